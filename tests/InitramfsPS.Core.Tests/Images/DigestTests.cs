using System;
using System.Text;
using InitramfsPS.Errors;
using InitramfsPS.Images;
using Xunit;

namespace InitramfsPS.Core.Tests.Images
{
    /// <summary>
    /// Digests become file names in layouts and the cache, so their parser is strict: anything but
    /// <c>sha256:</c> or <c>sha512:</c> and lower-case hex of the right length is refused.
    /// </summary>
    public class DigestTests
    {
        private const string AbcSha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        private const string AbcSha512 = "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";

        [Fact]
        public void Compute_gives_the_standard_hashes_and_Parse_round_trips_them()
        {
            var sha256 = Digest.Compute("sha256", "abc"u8);
            var sha512 = Digest.Compute("sha512", "abc"u8);
            Assert.Equal("sha256:" + AbcSha256, sha256.ToString());
            Assert.Equal("sha512:" + AbcSha512, sha512.ToString());
            Assert.Equal(sha256, Digest.Parse(sha256.ToString()));
            Assert.Equal(("sha512", AbcSha512), (Digest.Parse("sha512:" + AbcSha512).Algorithm, Digest.Parse("sha512:" + AbcSha512).Hex));
            Assert.Equal("ba7816bf8f01", sha256.ShortHex);
        }

        [Theory]
        [InlineData(null)]
        [InlineData("")]
        [InlineData(AbcSha256)]                                       // no algorithm
        [InlineData("sha256:")]
        [InlineData("sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD")]  // upper case
        [InlineData("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a")]   // 63 digits
        [InlineData("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0")] // 65 digits
        [InlineData("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n")] // a trailing newline
        [InlineData("sha256:../../../../etc/passwd")]
        [InlineData("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f200/../")]
        [InlineData("SHA256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")]
        [InlineData("md5:900150983cd24fb0d6963f7d28e17f72")]
        [InlineData("sha512:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")]  // sha256 length
        [InlineData(" sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")]
        public void Anything_but_an_exact_digest_is_refused(string? text)
        {
            Assert.False(Digest.TryParse(text, out _));
            var e = Assert.Throws<InitramfsException>(() => Digest.Parse(text, "layer digest"));
            Assert.Equal("InvalidDigest", e.ErrorId);
            Assert.Contains("layer digest", e.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("\n", e.Message, StringComparison.Ordinal);
        }

        [Fact]
        public void Matches_compares_a_finished_hash_with_the_hex()
        {
            var d = Digest.Parse("sha256:" + AbcSha256);
            using var hash = d.CreateHash();
            hash.AppendData(Encoding.ASCII.GetBytes("abc"));
            byte[] value = hash.GetHashAndReset();
            Assert.True(d.Matches(value));
            value[^1] ^= 1;
            Assert.False(d.Matches(value));
            Assert.Equal(d, Digest.FromSha256(Convert.FromHexString(AbcSha256)));
        }

        [Fact]
        public void An_unsupported_algorithm_cannot_be_computed_and_the_default_digest_prints_nothing()
        {
            Assert.Equal("InvalidDigest", Assert.Throws<InitramfsException>(() => Digest.Compute("md5", "abc"u8)).ErrorId);
            Assert.Equal(string.Empty, default(Digest).ToString());
        }
    }
}
