using InitramfsPS.Errors;
using InitramfsPS.Images;
using Xunit;

namespace InitramfsPS.Core.Tests.Images
{
    /// <summary>Platforms are parsed and normalised as containerd does, so an alias picks the same manifest.</summary>
    public class PlatformTests
    {
        [Theory]
        [InlineData("linux/amd64", "linux/amd64")]
        [InlineData("Linux/X86_64", "linux/amd64")]
        [InlineData("linux/x86-64", "linux/amd64")]
        [InlineData("  linux/aarch64 ", "linux/arm64")]
        [InlineData("linux/arm64/v8", "linux/arm64")]     // v8 is arm64's only variant
        [InlineData("linux/arm/v7", "linux/arm/v7")]
        [InlineData("linux/arm/v6", "linux/arm/v6")]
        [InlineData("linux/armhf", "linux/arm/v7")]
        [InlineData("linux/i386", "linux/386")]
        [InlineData("linux/i686", "linux/386")]
        [InlineData("linux/s390x", "linux/s390x")]
        public void Parse_normalises_aliases_and_default_variants(string text, string expected)
        {
            Assert.Equal(expected, Platform.Parse(text).ToString());
        }

        [Theory]
        [InlineData("")]
        [InlineData("linux")]
        [InlineData("linux/")]
        [InlineData("/amd64")]
        [InlineData("linux//v7")]
        [InlineData("linux/arm/v7/extra")]
        public void Parse_refuses_what_is_not_os_slash_architecture(string text)
        {
            var e = Assert.Throws<InitramfsException>(() => Platform.Parse(text));
            Assert.Equal(("InvalidPlatform", FailureKind.InvalidArgument), (e.ErrorId, e.Kind));
        }

        [Theory]
        [InlineData("linux/arm", "linux/arm/v7", true)]      // no variant asked: any variant runs
        [InlineData("linux/arm/v7", "linux/arm/v7", true)]
        [InlineData("linux/arm/v7", "linux/arm/v6", false)]
        [InlineData("linux/arm/v7", "linux/arm", false)]
        [InlineData("linux/amd64", "linux/arm64", false)]
        [InlineData("linux/arm64/v8", "linux/arm64", true)]
        [InlineData("windows/amd64", "linux/amd64", false)]
        public void Matches_wants_the_same_os_and_architecture_and_the_variant_only_when_asked(string wanted, string candidate, bool matches)
        {
            Assert.Equal(matches, Platform.Parse(wanted).Matches(Platform.Parse(candidate)));
        }

        [Fact]
        public void Every_platform_offered_to_tab_completion_parses()
        {
            foreach (string text in Platform.Common)
            {
                Assert.Equal("linux", Platform.Parse(text).Os);
            }
            Assert.Equal("linux/amd64", Platform.Default.ToString());
        }
    }
}
