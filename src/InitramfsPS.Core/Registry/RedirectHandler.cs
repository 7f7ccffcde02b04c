using System;
using System.Net.Http;
using System.Threading;
using System.Threading.Tasks;
using InitramfsPS.Errors;

namespace InitramfsPS.Registry
{
    /// <summary>
    /// Follows redirects (at most 10) here rather than in HttpClient, which drops the Authorization
    /// header on every one: the header goes along to the same scheme, host and port only, as Docker
    /// and containerd do, and nothing goes from HTTPS to plain HTTP elsewhere than on this machine
    /// unless -AllowPlainHttp. Accept and Range headers are carried.
    /// </summary>
    internal sealed class RedirectHandler : DelegatingHandler
    {
        private const int MaxRedirects = 10;

        private readonly RegistrySession session;

        public RedirectHandler(RegistrySession session) => this.session = session;

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var call = RegistryCall.Of(request);
            var current = request;
            try
            {
                for (int hop = 0; ; hop++)
                {
                    var response = await base.SendAsync(current, cancellationToken).ConfigureAwait(false);
                    if ((int)response.StatusCode is not (301 or 302 or 303 or 307 or 308))
                    {
                        return response;
                    }
                    using (response)
                    {
                        var next = Follow(current, response, call, hop);
                        if (!ReferenceEquals(current, request))
                        {
                            current.Dispose();
                        }
                        current = next;
                    }
                }
            }
            catch
            {
                if (!ReferenceEquals(current, request))
                {
                    current.Dispose();
                }
                throw;
            }
        }

        /// <summary>The request to send where <paramref name="response"/> points, or the error that refuses to go there.</summary>
        private HttpRequestMessage Follow(HttpRequestMessage current, HttpResponseMessage response, RegistryCall call, int hop)
        {
            var secrets = session.Secrets;
            var from = current.RequestUri!;
            var location = response.Headers.Location;
            if (hop >= MaxRedirects || location is null
                || !Uri.TryCreate(from, location, out var target) || target.Scheme is not ("http" or "https"))
            {
                string where = location is null ? "nowhere" : "'" + secrets.ServerText(location.OriginalString, 200) + "'";
                throw new InitramfsException("RegistryRequestFailed", FailureKind.InvalidData,
                    hop >= MaxRedirects
                        ? $"{session.Registry} redirected {call.Label} more than {MaxRedirects} times."
                        : $"{session.Registry} redirected {call.Label} to {where}, which is not an http or https address.", call.What);
            }
            if (target.Scheme == "http" && from.Scheme == "https" && !session.Options.AllowPlainHttp && !PlainHttpHandler.IsLoopback(target.Authority))
            {
                throw new InitramfsException("PlainHttpRefused", FailureKind.Security,
                    $"{session.Registry} redirected {call.Label} from HTTPS to plain HTTP ({secrets.ServerText(target.GetLeftPart(UriPartial.Path), 200)}); " +
                    "nothing was sent there. -AllowPlainHttp allows it.", session.Registry);
            }
            bool sameOrigin = target.Scheme == from.Scheme && target.Port == from.Port
                && string.Equals(target.IdnHost, from.IdnHost, StringComparison.OrdinalIgnoreCase);
            var next = new HttpRequestMessage(current.Method, target);
            call.AttachTo(next);
            foreach (var accept in current.Headers.Accept)
            {
                next.Headers.Accept.Add(accept);
            }
            next.Headers.Range = current.Headers.Range;
            if (sameOrigin)
            {
                next.Headers.Authorization = current.Headers.Authorization;
            }
            // The address may carry a signature in its query (blob stores): it is not shown.
            session.Say($"{(int)response.StatusCode}: {call.Label} is at {secrets.ServerText(target.GetLeftPart(UriPartial.Path), 200)} " +
                (current.Headers.Authorization is null ? "(no credentials to send)." : sameOrigin ? "(the same host: the credentials go along)." : "(another host: the credentials stay here)."));
            return next;
        }
    }
}
