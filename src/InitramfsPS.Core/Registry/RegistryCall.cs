using System;
using System.Net.Http;

namespace InitramfsPS.Registry
{
    /// <summary>
    /// One request of the fetcher, as the handlers of the transport see it (it rides in
    /// <see cref="HttpRequestMessage.Options"/>): what it is about (for errors such as TagNotFound),
    /// how messages name it, whether it goes to the token service, and the state that spans its
    /// resends: the attempts spent and whether an auth challenge was answered.
    /// </summary>
    internal sealed class RegistryCall
    {
        private static readonly HttpRequestOptionsKey<RegistryCall> Key = new("InitramfsPS.RegistryCall");

        public RegistryCall(string what, string label, bool toTokenService = false)
        {
            What = what;
            Label = label;
            ToTokenService = toTokenService;
        }

        /// <summary>The tag, digest or registry the request is about.</summary>
        public string What { get; }

        /// <summary>How messages name the request ("the manifest 'latest' of library/busybox").</summary>
        public string Label { get; }

        /// <summary>The request goes to the token service: no Authorization of ours, no challenge.</summary>
        public bool ToTokenService { get; }

        /// <summary>The attempts spent so far, resends after a failed read included: they share one budget.</summary>
        public int Attempt { get; set; }

        /// <summary>
        /// A dropped connection is not sent again as it is: the caller asks where an upload got to
        /// and goes on from there (a part of the body may have reached the registry).
        /// </summary>
        public bool NoResend { get; init; }

        /// <summary>An auth challenge was answered once; a second 401 is a refusal.</summary>
        public bool Challenged { get; set; }

        /// <summary>Puts this call on <paramref name="request"/>, and on each request that follows it (a redirect).</summary>
        public void AttachTo(HttpRequestMessage request) => request.Options.Set(Key, this);

        /// <summary>The call a request belongs to; every request of the fetcher has one.</summary>
        public static RegistryCall Of(HttpRequestMessage request) =>
            request.Options.TryGetValue(Key, out var call) ? call : throw new InvalidOperationException("A registry request was sent without its RegistryCall.");
    }
}
