using System;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Net.Http;
using System.Net.Http.Headers;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using InitramfsPS.Images;
using InitramfsPS.Registry;

namespace InitramfsPS.Core.Tests.Registry
{
    /// <summary>What the stub saw of one request, taken when it arrived (a retry sends the same message again).</summary>
    internal sealed record SeenRequest(string Method, Uri Uri, string? Authorization, string UserAgent, string? Range, IReadOnlyList<string> Accept);

    /// <summary>
    /// The network under a <see cref="RegistryClient"/>'s chain of handlers: answers each request
    /// with what the test says and keeps what it saw.
    /// </summary>
    internal sealed class StubRegistry : HttpMessageHandler
    {
        private readonly Func<HttpRequestMessage, int, CancellationToken, Task<HttpResponseMessage>> answer;
        private readonly List<SeenRequest> seen = new();

        public StubRegistry(Func<HttpRequestMessage, int, HttpResponseMessage> answer)
            : this((request, index, _) => Task.FromResult(answer(request, index)))
        {
        }

        public StubRegistry(Func<HttpRequestMessage, int, CancellationToken, Task<HttpResponseMessage>> answer) => this.answer = answer;

        public IReadOnlyList<SeenRequest> Seen
        {
            get
            {
                lock (seen)
                {
                    return seen.ToList();
                }
            }
        }

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            int index;
            lock (seen)
            {
                index = seen.Count;
                seen.Add(new SeenRequest(request.Method.Method, request.RequestUri!, request.Headers.Authorization?.ToString(),
                    request.Headers.UserAgent.ToString(), request.Headers.Range?.ToString(), request.Headers.Accept.Select(a => a.MediaType!).ToList()));
            }
            return answer(request, index, cancellationToken);
        }

        public const string Reference = "registry.example/lib/app:1.0";

        public static readonly byte[] Manifest = Encoding.UTF8.GetBytes(
            "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{},\"layers\":[]}");

        /// <summary>A client of <see cref="Reference"/> over <paramref name="stub"/>, with back-off short enough for a test.</summary>
        public static RegistryClient Client(StubRegistry stub, RegistryCredential? credential = null, RegistryLimits? limits = null,
            TimeSpan? firstDelay = null, List<string>? verbose = null, string reference = Reference) =>
            new(ImageReference.Parse(reference), new RegistryOptions
            {
                Credential = credential,
                Limits = limits ?? RegistryLimits.Default,
                FirstDelay = firstDelay ?? TimeSpan.FromMilliseconds(1),
                Verbose = verbose is null ? null : line => { lock (verbose) { verbose.Add(line); } },
            }, stub);

        public static HttpResponseMessage Ok(byte[] body, string mediaType = "application/vnd.oci.image.manifest.v1+json")
        {
            var content = new ByteArrayContent(body);
            content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
            return new HttpResponseMessage(HttpStatusCode.OK) { Content = content };
        }

        public static HttpResponseMessage Json(HttpStatusCode status, string json) =>
            new(status) { Content = new StringContent(json, Encoding.UTF8, "application/json") };

        public static HttpResponseMessage Challenge(string scheme, string parameter)
        {
            var response = Json(HttpStatusCode.Unauthorized, "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\"}]}");
            response.Headers.WwwAuthenticate.Add(new AuthenticationHeaderValue(scheme, parameter));
            return response;
        }

        public static string BasicOf(string user, string password) => "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(user + ":" + password));
    }
}
