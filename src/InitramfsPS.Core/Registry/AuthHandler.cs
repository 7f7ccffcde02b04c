using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Threading;
using System.Threading.Tasks;
using InitramfsPS.Errors;

namespace InitramfsPS.Registry
{
    /// <summary>
    /// Answers the registry's auth challenge once per call: Basic with the credential, or Bearer
    /// with a token from the challenge's realm (asked for the challenge's scope, or the pull scope
    /// of the repository; as the credential's user, or anonymously), cached per scope for its
    /// lifetime. Every later request carries the token or the Basic header. A token request goes
    /// to the handlers below this one (retries, redirects, timeouts), never through it.
    /// </summary>
    internal sealed class AuthHandler : DelegatingHandler
    {
        private readonly RegistrySession session;
        private readonly RegistryErrors errors;
        private readonly RetryRules rules;
        private readonly ConcurrentDictionary<string, (string Token, DateTimeOffset Expires)> tokens = new(StringComparer.Ordinal);
        private readonly SemaphoreSlim authLock = new(1, 1);
        private AuthenticationHeaderValue? basic;
        private RegistryExchange? tokenService;

        public AuthHandler(RegistrySession session, RegistryErrors errors, RetryRules rules)
        {
            this.session = session;
            this.errors = errors;
            this.rules = rules;
        }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var call = RegistryCall.Of(request);
            if (CurrentAuthorization() is { } auth)
            {
                request.Headers.Authorization = auth;
            }
            var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
            if (response.StatusCode != HttpStatusCode.Unauthorized || call.Challenged)
            {
                return response;
            }
            call.Challenged = true;
            using (response)
            {
                await AnswerChallengeAsync(response, cancellationToken).ConfigureAwait(false);
            }
            // The challenge is part of the protocol, not a failed attempt.
            call.Attempt--;
            request.Headers.Authorization = CurrentAuthorization();
            return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }

        private AuthenticationHeaderValue? CurrentAuthorization()
        {
            if (tokens.TryGetValue(session.Scope, out var token) && token.Expires > DateTimeOffset.UtcNow)
            {
                return new AuthenticationHeaderValue("Bearer", token.Token);
            }
            return basic;
        }

        private async Task AnswerChallengeAsync(HttpResponseMessage response, CancellationToken cancellationToken)
        {
            var challenge = response.Headers.WwwAuthenticate.FirstOrDefault();
            if (challenge is null)
            {
                throw new InitramfsException("RegistryCredentialsRefused", FailureKind.Security,
                    $"{session.Registry} refused the request (401) without saying how to authenticate.", session.Registry);
            }
            await authLock.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                session.EnsureCredential();
                var credential = session.Credential;
                if (string.Equals(challenge.Scheme, "Basic", StringComparison.OrdinalIgnoreCase))
                {
                    if (credential is null || basic is not null)
                    {
                        throw errors.Refused(AuthChallenge.Words(response, session.Secrets));
                    }
                    session.Say($"{session.Registry} asks for Basic auth; using the credentials of {credential}.");
                    basic = new AuthenticationHeaderValue("Basic", credential.BasicValue());
                    return;
                }
                if (!string.Equals(challenge.Scheme, "Bearer", StringComparison.OrdinalIgnoreCase))
                {
                    throw new InitramfsException("RegistryAuthUnsupported", FailureKind.NotImplemented,
                        $"{session.Registry} asks for '{session.Secrets.ServerText(challenge.Scheme, 40)}' authentication, which is not supported.", session.Registry);
                }
                if (tokens.TryGetValue(session.Scope, out var cached) && cached.Expires > DateTimeOffset.UtcNow)
                {
                    // A token we already hold was refused: it does not grant what we asked.
                    tokens.TryRemove(session.Scope, out _);
                    throw errors.Refused(AuthChallenge.Words(response, session.Secrets));
                }
                await FetchTokenAsync(AuthChallenge.Parse(challenge.Parameter ?? string.Empty), credential, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException)
            {
                // InvalidOperationException: a string that is not valid UTF-8 (JsonDocument checks it only when read).
                throw new InitramfsException("RegistryAuthUnsupported", FailureKind.InvalidData, $"The token service answered with invalid JSON: {session.Secrets.ServerText(ex.Message)}", session.Registry);
            }
            finally
            {
                authLock.Release();
            }
        }

        /// <summary>Asks the realm of a Bearer challenge for a token and keeps it for its lifetime, a little less.</summary>
        private async Task FetchTokenAsync(Dictionary<string, string> parameters, RegistryCredential? credential, CancellationToken cancellationToken)
        {
            var realmUri = AuthChallenge.CheckRealm(parameters.TryGetValue("realm", out string? realm) ? realm : null, session);
            var query = new StringBuilder();
            if (parameters.TryGetValue("service", out string? service))
            {
                query.Append("service=").Append(Uri.EscapeDataString(service));
            }
            // A pull asks for what the registry names; a push asks for all its scopes at once, or the
            // first upload's challenge (push) would find a token that only pulls.
            var scopes = session.Options.Push || !parameters.TryGetValue("scope", out string? named) ? session.Scopes : new[] { named };
            foreach (string scope in scopes)
            {
                query.Append(query.Length > 0 ? "&" : string.Empty).Append("scope=").Append(Uri.EscapeDataString(scope));
            }
            var tokenUrl = new UriBuilder(realmUri) { Query = query.ToString() }.Uri;
            string shown = session.Secrets.ServerText(realmUri.GetLeftPart(UriPartial.Path), 200);
            var call = new RegistryCall(session.Registry, $"the token service at {shown}", toTokenService: true);
            session.Say($"GET {shown} for a token ({(credential is null ? "anonymous" : "as " + credential)}).");
            tokenService ??= new RegistryExchange(new HttpMessageInvoker(InnerHandler!, disposeHandler: false), session, errors, rules);
            var json = await tokenService.RunAsync(() =>
            {
                var tokenRequest = new HttpRequestMessage(HttpMethod.Get, tokenUrl);
                if (credential is not null)
                {
                    tokenRequest.Headers.Authorization = new AuthenticationHeaderValue("Basic", credential.BasicValue());
                }
                return tokenRequest;
            }, call, (tokenResponse, ct) => tokenService.ReadCappedAsync(tokenResponse, RegistryClient.TokenCap, "the answer of " + call.Label, ct), cancellationToken).ConfigureAwait(false);
            using var doc = JsonDocument.Parse(json);
            string? token = RegistryErrors.StringProperty(doc.RootElement, "token") ?? RegistryErrors.StringProperty(doc.RootElement, "access_token");
            if (string.IsNullOrEmpty(token))
            {
                throw new InitramfsException("RegistryAuthUnsupported", FailureKind.InvalidData, "The token service answered without a token.", session.Registry);
            }
            session.Secrets.AddToken(token);
            int lifetime = doc.RootElement.TryGetProperty("expires_in", out var e) && e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int seconds) && seconds > 0 ? seconds : 60;
            // Renew a little early so a token never expires in the middle of a request.
            tokens[session.Scope] = (token, DateTimeOffset.UtcNow.AddSeconds(Math.Max(1, lifetime - 10)));
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                authLock.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
