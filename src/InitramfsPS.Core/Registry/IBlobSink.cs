using System;
using System.Threading;
using System.Threading.Tasks;

namespace InitramfsPS.Registry
{
    /// <summary>
    /// Sees the bytes of a blob while <see cref="RegistryClient.DownloadBlobAsync"/> downloads it,
    /// in order, exactly as they go to the cache, so that work on them (unpacking a layer) runs
    /// alongside the download instead of after it. Whether the bytes were the right ones is known only
    /// when the download returns: the blob is then committed, verified.
    /// </summary>
    public interface IBlobSink
    {
        /// <summary>The next bytes of the blob. May wait, which slows the download to the sink's pace.</summary>
        ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken);

        /// <summary>The download starts over from the first byte (the registry ignored a Range request): what was seen is void.</summary>
        void Restart();
    }
}
