using System;
using System.Net.Http;
using System.Threading;
using System.Threading.Tasks;

namespace InitramfsPS.Registry
{
    /// <summary>
    /// One call over a chain of handlers: sends the request, reads a successful answer with the
    /// caller's reader, and makes any other answer the module's error. A read that fails on the way
    /// (a dropped connection, a stall) makes a fresh request (a blob's asks for the rest with a
    /// Range header) under the same budget of attempts as the retries of the chain.
    /// </summary>
    internal sealed class RegistryExchange
    {
        private readonly HttpMessageInvoker sender;
        private readonly RegistrySession session;
        private readonly RegistryErrors errors;
        private readonly RetryRules rules;

        public RegistryExchange(HttpMessageInvoker sender, RegistrySession session, RegistryErrors errors, RetryRules rules)
        {
            this.sender = sender;
            this.session = session;
            this.errors = errors;
            this.rules = rules;
        }

        public Task<T> RunAsync<T>(Func<HttpRequestMessage> makeRequest, RegistryCall call, Func<HttpResponseMessage, CancellationToken, Task<T>> read, CancellationToken cancellationToken) =>
            RunAsync(makeRequest, call, static response => response.IsSuccessStatusCode, read, cancellationToken);

        /// <summary>As the other overload, with the answers <paramref name="accept"/> takes (a 404 that means "not there yet") read too.</summary>
        public async Task<T> RunAsync<T>(Func<HttpRequestMessage> makeRequest, RegistryCall call, Func<HttpResponseMessage, bool> accept,
            Func<HttpResponseMessage, CancellationToken, Task<T>> read, CancellationToken cancellationToken)
        {
            while (true)
            {
                using var request = makeRequest();
                call.AttachTo(request);
                using var response = await sender.SendAsync(request, cancellationToken).ConfigureAwait(false);
                if (accept(response))
                {
                    try
                    {
                        return await read(response, cancellationToken).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (RetryRules.IsTransient(ex) && !cancellationToken.IsCancellationRequested && !call.NoResend)
                    {
                        await rules.WaitOrThrowAsync(ex, call, session.Limits.Attempts, cancellationToken).ConfigureAwait(false);
                        continue;
                    }
                }
                string reason = session.Secrets.ServerText(response.ReasonPhrase, 120);
                string body = await BodyReader.ErrorBodyAsync(response, session.Limits, cancellationToken).ConfigureAwait(false);
                throw errors.Failure(response, reason, body, call, call.Attempt);
            }
        }

        /// <summary>A whole body that is not a blob, with its cap.</summary>
        public Task<byte[]> ReadCappedAsync(HttpResponseMessage response, int cap, string label, CancellationToken cancellationToken) =>
            BodyReader.ReadCappedAsync(response, cap, label, session.Limits, errors, cancellationToken);
    }
}
