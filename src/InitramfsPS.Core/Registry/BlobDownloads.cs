using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using InitramfsPS.Cache;
using InitramfsPS.Images;

namespace InitramfsPS.Registry
{
    /// <summary>
    /// Downloads several blobs of one repository into the cache, a few at a time, each through
    /// <see cref="RegistryClient.DownloadBlobAsync"/> (verified, resumed, committed only whole):
    /// the layers of an image pull and the parts of an artifact save alike.
    /// </summary>
    internal static class BlobDownloads
    {
        /// <summary>
        /// Downloads <paramref name="blobs"/> (those in the cache are not), at most
        /// <paramref name="parallel"/> at once, updating <paramref name="progress"/> (key: digest).
        /// <paramref name="sinkFor"/> gives, for a blob's index, a sink that sees its bytes as they
        /// arrive, finished once the blob is committed. The first failure stops the others and is
        /// what is thrown.
        /// </summary>
        public static async Task DownloadAllAsync(RegistryClient client, IReadOnlyList<Descriptor> blobs, BlobStore cache, int parallel,
            ConcurrentDictionary<string, (long Done, long Size)>? progress, Func<int, IBlobSink?>? sinkFor, CancellationToken cancellationToken)
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            using var slots = new SemaphoreSlim(Math.Clamp(parallel, 1, 32));
            var tasks = blobs.Select(async (blob, index) =>
            {
                await slots.WaitAsync(linked.Token).ConfigureAwait(false);
                try
                {
                    string key = blob.Digest.ToString();
                    progress?.TryAdd(key, (0, blob.Size));
                    using var sink = sinkFor?.Invoke(index);
                    await client.DownloadBlobAsync(blob, cache, done => progress?.AddOrUpdate(key, (done, blob.Size), (_, _) => (done, blob.Size)), linked.Token, sink).ConfigureAwait(false);
                    sink?.Finish();
                }
                catch
                {
                    // One failed blob fails the whole: stop the others rather than finish them for nothing.
                    linked.Cancel();
                    throw;
                }
                finally
                {
                    slots.Release();
                }
            }).ToList();
            try
            {
                await Task.WhenAll(tasks).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // Report the failure that cancelled the others, not the cancellation.
                var first = tasks.Where(t => t.IsFaulted).Select(t => t.Exception!.InnerException!).FirstOrDefault();
                if (first is not null)
                {
                    throw first;
                }
                throw;
            }
        }
    }
}
