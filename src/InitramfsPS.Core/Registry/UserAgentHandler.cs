using System.Net.Http;
using System.Net.Http.Headers;
using System.Threading;
using System.Threading.Tasks;

namespace InitramfsPS.Registry
{
    /// <summary>Names the client on every request: registry requests, redirect hops and token requests alike.</summary>
    internal sealed class UserAgentHandler : DelegatingHandler
    {
        private static readonly ProductInfoHeaderValue Product = new("InitramfsPS", "0.1");

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            // A retry sends the same request again: name the client once.
            if (request.Headers.UserAgent.Count == 0)
            {
                request.Headers.UserAgent.Add(Product);
            }
            return base.SendAsync(request, cancellationToken);
        }
    }
}
