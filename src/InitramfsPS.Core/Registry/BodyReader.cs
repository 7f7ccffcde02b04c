using System;
using System.IO;
using System.Net.Http;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace InitramfsPS.Registry
{
    /// <summary>
    /// Reads the bodies that are read whole (a manifest, a config, a token answer, a tag list, an
    /// error answer): each with a hard cap enforced as the bytes arrive, and the stall check.
    /// </summary>
    internal static class BodyReader
    {
        /// <summary>
        /// The whole body, refused with RegistryResponseTooLarge when it announces or brings more
        /// than <paramref name="cap"/> bytes.
        /// </summary>
        public static async Task<byte[]> ReadCappedAsync(HttpResponseMessage response, int cap, string label, RegistryLimits limits, RegistryErrors errors, CancellationToken cancellationToken)
        {
            if (response.Content.Headers.ContentLength is long announced && announced > cap)
            {
                throw errors.TooLarge(label, cap, announced);
            }
            using var stream = new StallGuardStream(await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false), limits.StallWindow, limits.MinBytesPerSecond);
            using var memory = new MemoryStream();
            var buffer = new byte[1 << 14];
            int n;
            while ((n = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
            {
                if (memory.Length + n > cap)
                {
                    throw errors.TooLarge(label, cap, null);
                }
                memory.Write(buffer, 0, n);
            }
            return memory.ToArray();
        }

        /// <summary>Up to <see cref="RegistryClient.ErrorBodyCap"/> bytes of an error answer, as text; whatever goes wrong reading it gives what was read so far.</summary>
        public static async Task<string> ErrorBodyAsync(HttpResponseMessage response, RegistryLimits limits, CancellationToken cancellationToken)
        {
            const int cap = RegistryClient.ErrorBodyCap;
            using var memory = new MemoryStream();
            try
            {
                using var stream = new StallGuardStream(await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false), limits.StallWindow, limits.MinBytesPerSecond);
                var buffer = new byte[1 << 14];
                int n;
                while (memory.Length < cap && (n = await stream.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, cap - memory.Length)), cancellationToken).ConfigureAwait(false)) > 0)
                {
                    memory.Write(buffer, 0, n);
                }
            }
            catch (Exception ex) when (ex is IOException or HttpRequestException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
            }
            return Encoding.UTF8.GetString(memory.GetBuffer(), 0, (int)memory.Length);
        }

        /// <summary>"4 MiB", "64 KiB".</summary>
        public static string Cap(int bytes) => bytes >= 1 << 20 ? $"{bytes >> 20} MiB" : $"{bytes >> 10} KiB";
    }
}
