using System;
using System.IO;
using System.Net;
using System.Net.Http;
using System.Net.Sockets;
using System.Threading;
using System.Threading.Tasks;
using InitramfsPS.Errors;

namespace InitramfsPS.Registry
{
    /// <summary>
    /// The bottom of the transport and its plain-HTTP rule: a registry is spoken to in HTTPS,
    /// except on this machine (localhost, 127.0.0.0/8, ::1) or with -AllowPlainHttp
    /// (<see cref="Scheme"/>). When an HTTPS request fails because the server answered the TLS
    /// hello in plain HTTP, the failure is PlainHttpRefused, saying so, rather than a TLS error.
    /// Over the network (no inner handler given) it owns the sockets: connect timeout, no
    /// automatic redirects or decompression.
    /// </summary>
    internal sealed class PlainHttpHandler : DelegatingHandler
    {
        private readonly RegistrySession session;

        /// <summary>Set when a server answered our TLS handshake in plain HTTP: it serves HTTP only.</summary>
        private volatile bool answeredInPlainHttp;

        /// <summary>Over <paramref name="network"/>, or over sockets of its own when it is null.</summary>
        public PlainHttpHandler(RegistrySession session, HttpMessageHandler? network)
        {
            this.session = session;
            var limits = session.Limits;
            InnerHandler = network ?? new SocketsHttpHandler
            {
                ConnectCallback = ConnectAsync,
                AutomaticDecompression = DecompressionMethods.None,
                // TCP and TLS handshakes together.
                ConnectTimeout = limits.ConnectTimeout > TimeSpan.Zero ? limits.ConnectTimeout : Timeout.InfiniteTimeSpan,
                PooledConnectionLifetime = TimeSpan.FromMinutes(5),
                // Redirects are followed by RedirectHandler, which decides where the Authorization header goes.
                AllowAutoRedirect = false,
            };
        }

        /// <summary>"http" for a loopback host or when plain HTTP is allowed, else "https".</summary>
        public static string Scheme(string hostAndPort, bool allowPlainHttp) => IsLoopback(hostAndPort) || allowPlainHttp ? "http" : "https";

        /// <summary>True for localhost, 127.0.0.0/8 and ::1, where plain HTTP is allowed without asking.</summary>
        public static bool IsLoopback(string hostAndPort)
        {
            string host = hostAndPort;
            if (host.StartsWith('['))
            {
                int end = host.IndexOf(']', StringComparison.Ordinal);
                host = end > 0 ? host[1..end] : host;
            }
            else if (host.Contains(':', StringComparison.Ordinal))
            {
                host = host[..host.LastIndexOf(':')];
            }
            return host == "localhost" || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));
        }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            try
            {
                return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
            }
            catch (HttpRequestException ex) when (!RetryRules.IsTransient(ex) && answeredInPlainHttp && !RegistryCall.Of(request).ToTokenService)
            {
                throw new InitramfsException("PlainHttpRefused", FailureKind.Security,
                    $"{session.Registry} serves plain HTTP, not HTTPS. Nothing was sent over plain HTTP; -AllowPlainHttp allows it " +
                    "(unencrypted: anyone on the path can read and change the traffic, credentials included).", session.Registry);
            }
        }

        private async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken).ConfigureAwait(false);
                return new FirstBytesStream(new NetworkStream(socket, ownsSocket: true), () => answeredInPlainHttp = true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
    }
}
