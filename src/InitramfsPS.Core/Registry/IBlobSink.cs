using System;
using System.Threading;
using System.Threading.Tasks;

namespace InitramfsPS.Registry
{
    /// <summary>
    /// Sees the bytes of a blob while <see cref="RegistryClient.DownloadBlobAsync"/> downloads it,
    /// in order, exactly as they go to the cache, so that work on them (unpacking a layer) runs
    /// alongside the download instead of after it. Whether the bytes were the right ones is known only
    /// when the download returns: the blob is then committed, verified, and <see cref="Finish"/> is
    /// called. A sink that is disposed without <see cref="Finish"/> drops what it made.
    /// </summary>
    internal interface IBlobSink : IDisposable
    {
        /// <summary>The next bytes of the blob. May wait, which slows the download to the sink's pace.</summary>
        ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken);

        /// <summary>The download starts over from the first byte (the registry ignored a Range request): what was seen is void.</summary>
        void Restart();

        /// <summary>The download returned with the blob verified and cached: keep what was made of it. Returns whether anything was kept.</summary>
        bool Finish();
    }
}
