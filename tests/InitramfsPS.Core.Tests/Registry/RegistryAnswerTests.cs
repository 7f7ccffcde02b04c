using System;
using System.IO;
using System.Linq;
using System.Net;
using System.Net.Http;
using System.Threading.Tasks;
using InitramfsPS.Errors;
using InitramfsPS.IO;
using InitramfsPS.Registry;
using Xunit;

namespace InitramfsPS.Core.Tests.Registry
{
    /// <summary>
    /// What the registry client makes of a hostile or odd answer, over a stub registry: no secret in
    /// a message, no unbounded read, no credential sent to another host, no HTTPS downgrade.
    /// </summary>
    public class RegistryAnswerTests
    {
        private const string Password = "correct-horse-battery-9931";

        private static readonly RegistryCredential Bob = new("bob", Password, "-Credential");

        [Fact]
        public async Task A_password_the_registry_echoes_in_an_error_body_is_masked_in_the_error()
        {
            var stub = new StubRegistry((request, _) => request.Headers.Authorization is null
                ? StubRegistry.Challenge("Basic", "realm=\"registry\"")
                : StubRegistry.Json(HttpStatusCode.BadRequest,
                    $"{{\"errors\":[{{\"code\":\"DENIED\",\"message\":\"login bob:{Password} is not welcome\"}}]}}"));
            using var client = StubRegistry.Client(stub, Bob);

            var ex = await Assert.ThrowsAsync<InitramfsException>(() => client.GetManifestAsync("1.0", TestContext.Current.CancellationToken));

            Assert.Equal("RegistryRequestFailed", ex.ErrorId);
            Assert.Contains("DENIED", ex.Message, StringComparison.Ordinal);
            Assert.Contains(SecretScrubber.Mask, ex.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(Password, ex.ToString(), StringComparison.Ordinal);
        }

        [Fact]
        public async Task A_token_the_registry_echoes_in_a_5xx_body_is_masked_in_the_error()
        {
            const string token = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXBheWxvYWQtMTIz.c2lnbmF0dXJlLXh5eg";
            var stub = new StubRegistry((request, _) => request.RequestUri!.Host == "auth.example"
                ? StubRegistry.Json(HttpStatusCode.OK, $"{{\"token\":\"{token}\"}}")
                : request.Headers.Authorization is null
                    ? StubRegistry.Challenge("Bearer", "realm=\"https://auth.example/token\"")
                    : StubRegistry.Json(HttpStatusCode.InternalServerError, $"{{\"errors\":[{{\"code\":\"UNKNOWN\",\"message\":\"bad token {token}\"}}]}}"));
            using var client = StubRegistry.Client(stub, Bob, limits: RegistryLimits.Default with { Attempts = 2 });

            var ex = await Assert.ThrowsAsync<InitramfsException>(() => client.GetManifestAsync("1.0", TestContext.Current.CancellationToken));

            Assert.Equal("RegistryUnavailable", ex.ErrorId);
            Assert.Contains("UNKNOWN", ex.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(token, ex.ToString(), StringComparison.Ordinal);
            Assert.DoesNotContain("c2VjcmV0LXBheWxvYWQtMTIz", ex.ToString(), StringComparison.Ordinal);
        }

        [Fact]
        public async Task A_manifest_announced_larger_than_4_MiB_is_refused_before_it_is_read()
        {
            var stub = new StubRegistry((_, _) =>
            {
                var response = StubRegistry.Ok(new byte[16]);
                response.Content.Headers.ContentLength = RegistryClient.ManifestCap + 1L;
                return response;
            });
            using var client = StubRegistry.Client(stub);

            var ex = await Assert.ThrowsAsync<InitramfsException>(() => client.GetManifestAsync("1.0", TestContext.Current.CancellationToken));

            Assert.Equal("RegistryResponseTooLarge", ex.ErrorId);
            Assert.Contains("4 MiB", ex.Message, StringComparison.Ordinal);
        }

        [Fact]
        public async Task A_manifest_that_streams_past_4_MiB_without_a_length_is_cut_off_at_the_cap()
        {
            var body = new CountingStream(RegistryClient.ManifestCap * 4L);
            var stub = new StubRegistry((_, _) => new HttpResponseMessage(HttpStatusCode.OK) { Content = new StreamContent(body) });
            using var client = StubRegistry.Client(stub);

            var ex = await Assert.ThrowsAsync<InitramfsException>(() => client.GetManifestAsync("1.0", TestContext.Current.CancellationToken));

            Assert.Equal("RegistryResponseTooLarge", ex.ErrorId);
            Assert.Contains("without end", ex.Message, StringComparison.Ordinal);
            Assert.True(body.Served <= RegistryClient.ManifestCap + (1 << 16), $"{body.Served} bytes were read");
        }

        [Fact]
        public async Task A_redirect_to_the_same_host_keeps_the_credential_and_one_to_another_host_drops_it()
        {
            var stub = new StubRegistry((request, index) =>
            {
                if (request.Headers.Authorization is null && index == 0)
                {
                    return StubRegistry.Challenge("Basic", "realm=\"registry\"");
                }
                if (request.RequestUri!.AbsolutePath.EndsWith("/1.0", StringComparison.Ordinal))
                {
                    var moved = new HttpResponseMessage(HttpStatusCode.TemporaryRedirect);
                    moved.Headers.Location = new Uri("/v2/lib/app/manifests/moved", UriKind.Relative);
                    return moved;
                }
                if (request.RequestUri.AbsolutePath.EndsWith("/moved", StringComparison.Ordinal))
                {
                    var away = new HttpResponseMessage(HttpStatusCode.Found);
                    away.Headers.Location = new Uri("https://blobs.example/signed?sig=abc");
                    return away;
                }
                return StubRegistry.Ok(StubRegistry.Manifest);
            });
            using var client = StubRegistry.Client(stub, Bob);

            await client.GetManifestAsync("1.0", TestContext.Current.CancellationToken);

            var seen = stub.Seen;
            Assert.Equal(new[] { "registry.example", "registry.example", "registry.example", "blobs.example" }, seen.Select(s => s.Uri.Host));
            Assert.Equal(StubRegistry.BasicOf("bob", Password), seen[2].Authorization);
            Assert.Null(seen[3].Authorization);
            // The Accept header goes along, and every hop names the client.
            Assert.Contains("application/vnd.oci.image.index.v1+json", seen[3].Accept);
            Assert.All(seen, s => Assert.StartsWith("InitramfsPS/", s.UserAgent, StringComparison.Ordinal));
        }

        [Fact]
        public async Task A_redirect_from_HTTPS_to_plain_HTTP_elsewhere_is_refused_and_nothing_is_sent_there()
        {
            var stub = new StubRegistry((_, _) =>
            {
                var away = new HttpResponseMessage(HttpStatusCode.Found);
                away.Headers.Location = new Uri("http://blobs.example/manifest");
                return away;
            });
            using var client = StubRegistry.Client(stub);

            var ex = await Assert.ThrowsAsync<InitramfsException>(() => client.GetManifestAsync("1.0", TestContext.Current.CancellationToken));

            Assert.Equal("PlainHttpRefused", ex.ErrorId);
            Assert.Single(stub.Seen);
        }

        [Theory]
        [InlineData("registry.example/lib/app:1.0", "https")]
        [InlineData("127.0.0.1:5000/lib/app:1.0", "http")]
        [InlineData("localhost:5000/lib/app:1.0", "http")]
        [InlineData("[::1]:5000/lib/app:1.0", "http")]
        public async Task A_registry_on_this_machine_is_spoken_to_in_plain_HTTP_and_any_other_in_HTTPS(string reference, string scheme)
        {
            var stub = new StubRegistry((_, _) => StubRegistry.Ok(StubRegistry.Manifest));
            using var client = StubRegistry.Client(stub, reference: reference);

            await client.GetManifestAsync("1.0", TestContext.Current.CancellationToken);

            Assert.Equal(scheme, Assert.Single(stub.Seen).Uri.Scheme);
        }

        /// <summary>A body of zeros that never says its length, counting what was read of it.</summary>
        private sealed class CountingStream : ReadOnlyStream
        {
            private readonly long length;

            public CountingStream(long length) => this.length = length;

            public long Served { get; private set; }

            public override int Read(Span<byte> buffer)
            {
                int n = (int)Math.Min(buffer.Length, length - Served);
                buffer[..n].Clear();
                Served += n;
                return n;
            }
        }
    }
}
