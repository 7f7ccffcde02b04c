using System;
using System.Net;
using System.Net.Http;
using System.Threading;
using System.Threading.Tasks;

namespace InitramfsPS.Registry
{
    /// <summary>
    /// Tries a request again after 429, 5xx, a dropped connection, a timeout or a stall, with
    /// back-off (or the wait a Retry-After asks for, at most 60 s), until the call's attempts are
    /// spent; then the last answer goes up (the fetcher makes it an error) or RegistryUnavailable
    /// is thrown. Each attempt says what it sends. A failure that asking again cannot cure (a name
    /// that does not resolve, a TLS handshake that fails) is RegistryUnavailable at once; any other
    /// answer, 4xx included, goes up as it is.
    /// </summary>
    internal sealed class RetryHandler : DelegatingHandler
    {
        private readonly RegistrySession session;
        private readonly RegistryErrors errors;
        private readonly RetryRules rules;

        public RetryHandler(RegistrySession session, RegistryErrors errors, RetryRules rules)
        {
            this.session = session;
            this.errors = errors;
            this.rules = rules;
        }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var call = RegistryCall.Of(request);
            int attempts = session.Limits.Attempts;
            while (true)
            {
                int attempt = ++call.Attempt;
                // A token service's address (realm, service, scope) is the registry's words.
                string uri = call.ToTokenService ? session.Secrets.ServerText(request.RequestUri!.ToString(), 400) : request.RequestUri!.ToString();
                session.Say($"{request.Method} {uri}{(request.Headers.Range is { } r ? " " + r : string.Empty)}");
                HttpResponseMessage response;
                try
                {
                    response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
                }
                catch (HttpRequestException ex) when (!RetryRules.IsTransient(ex))
                {
                    throw errors.Unavailable($"{call.Label}: {errors.Explain(ex)}");
                }
                catch (Exception ex) when (RetryRules.IsTransient(ex) && !cancellationToken.IsCancellationRequested && !call.NoResend)
                {
                    // A refused connection is more often a wrong port than a restarting registry: try briefly.
                    bool refused = ex is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError } && !RetryRules.IsConnectTimeout(ex);
                    await rules.WaitOrThrowAsync(ex, call, refused ? Math.Min(3, attempts) : attempts, cancellationToken).ConfigureAwait(false);
                    continue;
                }
                var status = response.StatusCode;
                if ((status == HttpStatusCode.TooManyRequests || (int)status >= 500) && attempt < attempts && !call.NoResend)
                {
                    var delay = RetryRules.RetryAfter(response) ?? rules.Backoff(attempt);
                    string reason = session.Secrets.ServerText(response.ReasonPhrase, 120);
                    response.Dispose();
                    session.Say($"{call.Label}: {(int)status} {reason}; retrying in {RegistryLimits.Format(delay)} (attempt {attempt + 1} of {attempts}).");
                    await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
                    continue;
                }
                return response;
            }
        }
    }
}
