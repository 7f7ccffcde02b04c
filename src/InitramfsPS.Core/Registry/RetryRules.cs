using System;
using System.IO;
using System.Net.Http;
using System.Threading;
using System.Threading.Tasks;
using InitramfsPS.Errors;

namespace InitramfsPS.Registry
{
    /// <summary>
    /// When a failed request is tried again and how long to wait first; shared by
    /// <see cref="RetryHandler"/> (failures while sending) and the fetcher (failures while reading
    /// a body), which spend one budget of <see cref="RegistryLimits.Attempts"/> per call.
    /// </summary>
    internal sealed class RetryRules
    {
        private readonly RegistrySession session;
        private readonly RegistryErrors errors;

        public RetryRules(RegistrySession session, RegistryErrors errors)
        {
            this.session = session;
            this.errors = errors;
        }

        /// <summary>
        /// Dropped connections, resets, timeouts and stalls are retried; a name that does not
        /// resolve or a TLS handshake that fails will not get better by asking again, so they fail
        /// at once.
        /// </summary>
        public static bool IsTransient(Exception ex) => ex switch
        {
            HttpRequestException { HttpRequestError: HttpRequestError.NameResolutionError or HttpRequestError.SecureConnectionError or HttpRequestError.ProxyTunnelError } => false,
            HttpRequestException or IOException => true,
            OperationCanceledException when IsConnectTimeout(ex) => true,
            _ => false,
        };

        /// <summary>The handler's ConnectTimeout expired (it reports a TimeoutException somewhere in the chain).</summary>
        public static bool IsConnectTimeout(Exception ex)
        {
            for (var e = ex; e is not null; e = e.InnerException)
            {
                if (e is TimeoutException)
                {
                    return true;
                }
            }
            return false;
        }

        /// <summary>The back-off before attempt <paramref name="attempt"/> + 1: the first delay, doubling, at most 15 s.</summary>
        public TimeSpan Backoff(int attempt) =>
            TimeSpan.FromMilliseconds(Math.Min(session.Options.FirstDelay.TotalMilliseconds * Math.Pow(2, attempt - 1), 15_000));

        /// <summary>The wait a 429 or 5xx asks for, bounded to 0..60 s; null when it asks for none.</summary>
        public static TimeSpan? RetryAfter(HttpResponseMessage response)
        {
            var retry = response.Headers.RetryAfter;
            TimeSpan? delay = retry?.Delta ?? (retry?.Date is { } date ? date - DateTimeOffset.UtcNow : null);
            return delay is { } d ? TimeSpan.FromSeconds(Math.Clamp(d.TotalSeconds, 0, 60)) : null;
        }

        /// <summary>After a transient failure: a verbose line and the back-off, or RegistryUnavailable when the attempts are spent.</summary>
        public async Task WaitOrThrowAsync(Exception ex, RegistryCall call, int attempts, CancellationToken cancellationToken)
        {
            string why = errors.Explain(ex);
            int attempt = call.Attempt;
            if (attempt >= attempts)
            {
                throw ex is TransferStalledException || IsConnectTimeout(ex)
                    ? new InitramfsException("RegistryUnavailable", FailureKind.NotFound,
                        $"{session.Registry} stopped answering: {call.Label} stalled ({why}) on each of {attempt} attempts.", session.Registry)
                    : errors.Unavailable($"{call.Label}: {why} ({attempt} attempts)");
            }
            var delay = Backoff(attempt);
            session.Say($"{call.Label}: {why}; retrying in {RegistryLimits.Format(delay)} (attempt {attempt + 1} of {attempts}).");
            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
        }
    }
}
