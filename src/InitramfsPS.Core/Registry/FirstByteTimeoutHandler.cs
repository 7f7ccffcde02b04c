using System;
using System.Net.Http;
using System.Threading;
using System.Threading.Tasks;

namespace InitramfsPS.Registry
{
    /// <summary>
    /// Each request (each redirect hop) must bring the answer's headers within
    /// <see cref="RegistryLimits.FirstByteTimeout"/>, connecting included; otherwise it fails with
    /// <see cref="TransferStalledException"/>, which is retried like a stall.
    /// </summary>
    internal sealed class FirstByteTimeoutHandler : DelegatingHandler
    {
        private readonly RegistryLimits limits;

        public FirstByteTimeoutHandler(RegistryLimits limits) => this.limits = limits;

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            using var firstByte = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            if (limits.FirstByteTimeout > TimeSpan.Zero)
            {
                firstByte.CancelAfter(limits.FirstByteTimeout);
            }
            try
            {
                return await base.SendAsync(request, firstByte.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (firstByte.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new TransferStalledException($"no response within {RegistryLimits.Format(limits.FirstByteTimeout)}");
            }
        }
    }
}
