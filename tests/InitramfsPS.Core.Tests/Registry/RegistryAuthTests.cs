using System;
using System.Linq;
using System.Net;
using System.Threading.Tasks;
using InitramfsPS.Errors;
using InitramfsPS.Registry;
using Xunit;

namespace InitramfsPS.Core.Tests.Registry
{
    /// <summary>
    /// The auth handler of the registry client, over a stub registry: what a user would notice is a
    /// private image that does not pull, or a credential sent where it should not go.
    /// </summary>
    public class RegistryAuthTests
    {
        private static readonly RegistryCredential Alice = new("alice", "wonder-land-42", "-Credential");

        [Fact]
        public async Task A_registry_asking_for_Basic_auth_gets_the_credential_and_the_manifest_pulls()
        {
            var stub = new StubRegistry((request, _) => request.Headers.Authorization is null
                ? StubRegistry.Challenge("Basic", "realm=\"registry\"")
                : request.Headers.Authorization.ToString() == StubRegistry.BasicOf("alice", "wonder-land-42")
                    ? StubRegistry.Ok(StubRegistry.Manifest)
                    : StubRegistry.Json(HttpStatusCode.Unauthorized, "{}"));
            using var client = StubRegistry.Client(stub, Alice);

            var (bytes, _) = await client.GetManifestAsync("1.0", TestContext.Current.CancellationToken);

            Assert.Equal(StubRegistry.Manifest, bytes);
            Assert.Equal(new string?[] { null, StubRegistry.BasicOf("alice", "wonder-land-42") }, stub.Seen.Select(s => s.Authorization));
        }

        [Fact]
        public async Task A_Bearer_challenge_gets_a_token_for_its_scope_from_its_realm_once_for_several_requests()
        {
            // Not the pull scope of lib/app the client would ask for on its own: the challenge's scope wins.
            const string scope = "repository:mirror/lib/app:pull";
            var stub = new StubRegistry((request, _) =>
            {
                if (request.RequestUri!.Host == "auth.example")
                {
                    // The token service: the credential as Basic, the challenge's service and scope in the query.
                    return request.Headers.Authorization?.ToString() == StubRegistry.BasicOf("alice", "wonder-land-42")
                        && request.RequestUri.Query == "?service=registry.example&scope=" + Uri.EscapeDataString(scope)
                        ? StubRegistry.Json(HttpStatusCode.OK, "{\"token\":\"tok-3f9a8b7c6d5e\",\"expires_in\":300}")
                        : StubRegistry.Json(HttpStatusCode.Unauthorized, "{}");
                }
                return request.Headers.Authorization?.ToString() == "Bearer tok-3f9a8b7c6d5e"
                    ? StubRegistry.Ok(StubRegistry.Manifest)
                    : StubRegistry.Challenge("Bearer", $"realm=\"https://auth.example/token\",service=\"registry.example\",scope=\"{scope}\"");
            });
            using var client = StubRegistry.Client(stub, Alice);

            await client.GetManifestAsync("1.0", TestContext.Current.CancellationToken);
            await client.GetManifestAsync("1.0", TestContext.Current.CancellationToken);

            Assert.Equal(
                new[] { "registry.example", "auth.example", "registry.example", "registry.example" },
                stub.Seen.Select(s => s.Uri.Host));
            Assert.Equal("Bearer tok-3f9a8b7c6d5e", stub.Seen[3].Authorization);
            // The token is a secret from now on.
            Assert.DoesNotContain("tok-3f9a8b7c6d5e", client.Secrets.Scrub("token tok-3f9a8b7c6d5e"), StringComparison.Ordinal);
        }

        [Fact]
        public async Task A_Bearer_challenge_without_a_scope_asks_for_the_pull_scope_of_the_repository_anonymously()
        {
            var stub = new StubRegistry((request, _) => request.RequestUri!.Host == "auth.example"
                ? StubRegistry.Json(HttpStatusCode.OK, "{\"access_token\":\"anon-token-77aa\"}")
                : request.Headers.Authorization is null
                    ? StubRegistry.Challenge("Bearer", "realm=\"https://auth.example/token\"")
                    : StubRegistry.Ok(StubRegistry.Manifest));
            using var client = StubRegistry.Client(stub);

            await client.GetManifestAsync("1.0", TestContext.Current.CancellationToken);

            Assert.Equal("?scope=" + Uri.EscapeDataString("repository:lib/app:pull"), stub.Seen[1].Uri.Query);
            Assert.Null(stub.Seen[1].Authorization);
            Assert.Equal("Bearer anon-token-77aa", stub.Seen[2].Authorization);
        }

        [Fact]
        public async Task Basic_credentials_the_registry_refuses_fail_as_RegistryCredentialsRefused_naming_the_user_not_the_password()
        {
            var stub = new StubRegistry((_, _) => StubRegistry.Challenge("Basic", "realm=\"registry\",error=\"invalid_user\""));
            using var client = StubRegistry.Client(stub, Alice);

            var ex = await Assert.ThrowsAsync<InitramfsException>(() => client.GetManifestAsync("1.0", TestContext.Current.CancellationToken));

            Assert.Equal("RegistryCredentialsRefused", ex.ErrorId);
            Assert.Contains("alice", ex.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("wonder-land-42", ex.Message, StringComparison.Ordinal);
            // One challenge is answered, once: no loop of 401s.
            Assert.Equal(2, stub.Seen.Count);
        }

        [Fact]
        public async Task A_token_service_refusing_the_credentials_fails_as_RegistryCredentialsRefused()
        {
            var stub = new StubRegistry((request, _) => request.RequestUri!.Host == "auth.example"
                ? StubRegistry.Json(HttpStatusCode.Unauthorized, "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"bad login\"}]}")
                : StubRegistry.Challenge("Bearer", "realm=\"https://auth.example/token\",service=\"registry.example\""));
            using var client = StubRegistry.Client(stub, Alice);

            var ex = await Assert.ThrowsAsync<InitramfsException>(() => client.GetManifestAsync("1.0", TestContext.Current.CancellationToken));

            Assert.Equal("RegistryCredentialsRefused", ex.ErrorId);
            Assert.Contains("bad login", ex.Message, StringComparison.Ordinal);
            // A refusal is not retried.
            Assert.Equal(2, stub.Seen.Count);
        }

        [Fact]
        public async Task A_plain_HTTP_token_realm_on_another_host_gets_no_credential()
        {
            var stub = new StubRegistry((_, _) => StubRegistry.Challenge("Bearer", "realm=\"http://auth.example/token\""));
            using var client = StubRegistry.Client(stub, Alice);

            var ex = await Assert.ThrowsAsync<InitramfsException>(() => client.GetManifestAsync("1.0", TestContext.Current.CancellationToken));

            Assert.Equal("RegistryAuthRealmInvalid", ex.ErrorId);
            Assert.DoesNotContain(stub.Seen, s => s.Uri.Host == "auth.example");
        }
    }
}
