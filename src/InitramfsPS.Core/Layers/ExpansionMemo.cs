using System;
using System.IO;
using System.Linq;
using System.Threading;
using InitramfsPS.Cache;
using InitramfsPS.Images;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Layers
{
    /// <summary>
    /// Expands an image for tab completion: only when it is cheap, and remembering the last image
    /// expanded (by manifest digest and blob store), so that pressing Tab again costs nothing. Cheap
    /// means that the layers whose parsed index is not in the cache (<see cref="LayerIndex"/>) hold
    /// at most <see cref="ReadBudget"/> bytes, and that it ends within <see cref="TimeBudget"/>;
    /// otherwise, and on any failure, there is no rootfs: completion never fails.
    /// </summary>
    internal static class ExpansionMemo
    {
        /// <summary>The most layer bytes an expansion for completion may read (indexed layers cost nothing).</summary>
        public const long ReadBudget = 256L << 20;

        /// <summary>How long an expansion for completion may run before it is abandoned.</summary>
        public static readonly TimeSpan TimeBudget = TimeSpan.FromSeconds(10);

        private static readonly object Gate = new();
        private static (Digest Digest, string Blobs, string Cache, Rootfs Rootfs)? last;

        /// <summary>The rootfs of <paramref name="image"/>, or null when expanding it would cost too much or fails.</summary>
        public static Rootfs? TryExpand(OciImage image, BlobStore cache)
        {
            lock (Gate)
            {
                if (last is { } memo && memo.Digest == image.Digest && memo.Blobs == image.BlobDirectory && memo.Cache == cache.Root)
                {
                    return memo.Rootfs;
                }
                try
                {
                    if (CostToRead(image, cache) > ReadBudget)
                    {
                        return null;
                    }
                    using var timeout = new CancellationTokenSource(TimeBudget);
                    var rootfs = ImageExpander.Expand(image, cache, new ExpandOptions(), timeout.Token);
                    last = (image.Digest, image.BlobDirectory, cache.Root, rootfs);
                    return rootfs;
                }
#pragma warning disable CA1031 // Completion must not fail, whatever went wrong: no rootfs, no completions.
                catch (Exception)
#pragma warning restore CA1031
                {
                    return null;
                }
            }
        }

        /// <summary>Layer bytes an expansion would read: every layer but the compressed ones indexed in the cache.</summary>
        public static long CostToRead(OciImage image, BlobStore cache) =>
            image.Layers.Sum(l => l.Compression != LayerCompression.None && l.DiffId is { } diffId
                && File.Exists(cache.IndexPathOf(diffId)) && cache.Has(diffId) ? 0 : l.Size);
    }
}
