using System;
using System.Globalization;
using System.Net;
using InitramfsPS.Boot;
using InitramfsPS.Compression;
using InitramfsPS.Errors;
using InitramfsPS.Export;

namespace InitramfsPS
{
    /// <summary>How <see cref="Initramfs.OpenImage"/> finds an image.</summary>
    public sealed class ImageOptions
    {
        /// <summary>The platform to pick from a multi-platform image, <c>os/arch[/variant]</c>; null is linux on this machine's architecture.</summary>
        public string? Platform { get; init; }

        /// <summary>Registry credentials; without them the auth files (auth.json, ~/.docker/config.json) are used.</summary>
        public NetworkCredential? Credential { get; init; }

        /// <summary>Where <see cref="Credential"/> came from, as errors name it.</summary>
        public string CredentialOrigin { get; init; } = "the credential given";

        /// <summary>Allow plain, unencrypted HTTP to a registry that is not on this machine (loopback always may).</summary>
        public bool AllowPlainHttp { get; init; }

        /// <summary>Use only the local cache; fail if the image is not there.</summary>
        public bool Offline { get; init; }

        /// <summary>How many layers download at once (1 to 32).</summary>
        public int MaxParallelDownloads { get; init; } = 3;

        /// <summary>
        /// Turns the host path of an <c>oci:</c> or <c>docker-archive:</c> reference into a full
        /// path; null resolves it against the current directory.
        /// </summary>
        public Func<string, string>? ResolvePath { get; init; }

        /// <summary>Downloads and archive reads as they go; called from worker threads.</summary>
        public IProgress<InitramfsProgress>? Progress { get; init; }

        /// <summary>What the registry client does (requests, retries, redirects), scrubbed of secrets; called from worker threads.</summary>
        public Action<string>? Verbose { get; init; }
    }

    /// <summary>What an operation reports as it goes (<see cref="InitramfsProgress.Stage"/> says which).</summary>
    public enum ProgressStage
    {
        /// <summary>A layer downloading from a registry: <see cref="InitramfsProgress.Item"/> is its digest.</summary>
        Pull,

        /// <summary>A <c>docker save</c> archive read into the cache: the item is the file.</summary>
        ReadArchive,

        /// <summary>An image's layers applied into a rootfs: the item is the image, with the layer's index and count.</summary>
        Expand,

        /// <summary>An initramfs archive read into a rootfs: the item is the file.</summary>
        Import,

        /// <summary>An artifact's blobs pushed to a registry: the item is the reference; bytes sent or found there, of all.</summary>
        Publish,
    }

    /// <summary>One step of an operation's progress: <see cref="Done"/> of <see cref="Total"/> bytes of <see cref="Item"/>.</summary>
    /// <param name="Stage">The operation.</param>
    /// <param name="Item">What is being worked on: a layer digest, a file, an image.</param>
    /// <param name="Done">Bytes done.</param>
    /// <param name="Total">Bytes in all (0 when not known).</param>
    public sealed record InitramfsProgress(ProgressStage Stage, string Item, long Done, long Total)
    {
        /// <summary>For <see cref="ProgressStage.Expand"/>: the layer (from 1).</summary>
        public int Index { get; init; }

        /// <summary>For <see cref="ProgressStage.Expand"/>: how many layers the image has.</summary>
        public int Count { get; init; }
    }

    /// <summary>How <see cref="Initramfs.Export"/> writes an archive. Every value is checked when the export starts.</summary>
    public sealed class ExportOptions
    {
        /// <summary>The compression; null takes it from the file name (<c>.cpio</c>, <c>.cpio.gz</c>, <c>.cpio.zst</c>).</summary>
        public InitramfsCompression? Compression { get; init; }

        /// <summary>
        /// The compression level: gzip 0–9 (default 6), zstd 1–19 (default 3), none for an
        /// uncompressed archive; a level outside is an error (<c>CompressionLevelInvalid</c>). Null is the default.
        /// </summary>
        public int? Level { get; init; }

        /// <summary>Threads that compress parts at once (1 to 256; null is one per processor, at most 8). The bytes do not depend on it.</summary>
        public int? Workers { get; init; }

        /// <summary>Write the archive even when /init would not start; the problems become warnings.</summary>
        public bool AllowUnbootable { get; init; }

        /// <summary>Replace an existing file (else an existing file is an error).</summary>
        public bool Overwrite { get; init; } = true;

        /// <summary>Add /dev, /dev/console, /proc, /sys, /tmp and /run when missing.</summary>
        public bool AddDefaultEntries { get; init; } = true;

        /// <summary>
        /// Copy parts that an earlier export compressed (same uncompressed bytes, codec, level and
        /// compressor build) from the cache's part cache instead of compressing them, and keep this
        /// export's parts there. The archive is the same bytes either way.
        /// </summary>
        public bool UsePartCache { get; init; } = true;

        /// <summary>Clamp every mtime to at most this Unix time; null takes <c>$SOURCE_DATE_EPOCH</c> when set.</summary>
        public long? SourceDateEpoch { get; init; }

        /// <summary>The kernel that will boot the archive: checked first; its errors refuse the export unless <see cref="AllowUnbootable"/>.</summary>
        public KernelImage? Kernel { get; init; }

        /// <summary>
        /// Receives the export's live counters about ten times a second, from a timer thread; read
        /// their properties when it is called.
        /// </summary>
        public IProgress<ExportProgress>? Progress { get; init; }

        /// <summary>The compression an export to <paramref name="path"/> uses.</summary>
        /// <param name="path">The archive's path.</param>
        public InitramfsCompression CompressionFor(string path) => Compression ?? Compressors.FromFileName(path);

        /// <summary>The level <paramref name="compression"/> is written at; a <see cref="Level"/> outside its range is an error (<c>CompressionLevelInvalid</c>).</summary>
        /// <param name="compression">The compression.</param>
        public int LevelFor(InitramfsCompression compression)
        {
            if (Level is not { } level)
            {
                return Compressors.DefaultLevel(compression);
            }
            Compressors.CheckLevel(compression, level);
            return level;
        }

        /// <summary>A warning when <paramref name="path"/>'s name implies another compression than the one written, else null.</summary>
        /// <param name="path">The archive's path.</param>
        public string? NameMismatch(string path) => Compressors.NameMismatch(path, CompressionFor(path));

        /// <summary>The settings the exporter runs with, every value checked.</summary>
        internal ExportSettings Resolve(string path, ExportProgress? progress)
        {
            var compression = CompressionFor(path);
            int level = LevelFor(compression);
            if (Workers is { } workers && (workers < 1 || workers > 256))
            {
                throw new InitramfsException("WorkersInvalid", FailureKind.InvalidArgument, $"Workers runs from 1 to 256; {workers} is outside.", workers);
            }
            return new ExportSettings
            {
                Compression = compression,
                Level = level,
                Workers = Workers ?? ExportSettings.DefaultWorkers,
                AddDefaultEntries = AddDefaultEntries,
                AllowUnbootable = AllowUnbootable,
                Overwrite = Overwrite,
                ClampMTime = ClampTime(),
                Progress = progress,
                Kernel = Kernel,
            };
        }

        private long? ClampTime()
        {
            if (SourceDateEpoch is { } epoch)
            {
                if (epoch < 0 || epoch > uint.MaxValue)
                {
                    throw new InitramfsException("SourceDateEpochInvalid", FailureKind.InvalidArgument,
                        $"The source date epoch {epoch} is outside 0 to {uint.MaxValue}.", epoch);
                }
                return epoch;
            }
            string? env = Environment.GetEnvironmentVariable("SOURCE_DATE_EPOCH");
            if (string.IsNullOrEmpty(env))
            {
                return null;
            }
            if (!long.TryParse(env, NumberStyles.None, CultureInfo.InvariantCulture, out long fromEnvironment))
            {
                throw new InitramfsException("SourceDateEpochInvalid", FailureKind.InvalidArgument,
                    $"SOURCE_DATE_EPOCH='{env}' is not a number of seconds.", env);
            }
            return fromEnvironment;
        }
    }

    /// <summary>What <see cref="Initramfs.Test(RootFilesystem.Rootfs, TestOptions?, System.Threading.CancellationToken)"/> checks besides the rootfs itself.</summary>
    public sealed class TestOptions
    {
        /// <summary>Also check that this kernel can boot it: initrd support, the decompressor, architecture, devtmpfs, virtio-mmio and vsock.</summary>
        public KernelImage? Kernel { get; init; }

        /// <summary>The guest memory in bytes the VM will have: below the least the archive boots in is an error finding (MemoryTooSmall), else the least is reported (MemoryMinimum).</summary>
        public long? Memory { get; init; }
    }

    /// <summary>What <see cref="Initramfs.Remove"/> removes, and how it asks.</summary>
    public sealed class RemoveOptions
    {
        /// <summary>Paths or patterns inside the rootfs.</summary>
        public System.Collections.Generic.IReadOnlyList<string> Paths { get; init; } = Array.Empty<string>();

        /// <summary>Usual trims by name: Docs, ManPages, Locales, PackageCaches, PythonCache.</summary>
        public System.Collections.Generic.IReadOnlyList<string> Presets { get; init; } = Array.Empty<string>();

        /// <summary>Remove directories with everything below them (else a directory with entries is an error, <c>DirectoryNotEmpty</c>).</summary>
        public bool Recurse { get; init; }

        /// <summary>
        /// Asked before each removal with what would go (a path, and how many entries and bytes) and
        /// why; false keeps it, and then nothing is counted as removed. Null removes without asking.
        /// </summary>
        public Func<string, string, bool>? Approve { get; init; }

        /// <summary>
        /// Called when a path cannot be removed (not found, the root, a directory with entries):
        /// the other paths are still removed. Null throws the error.
        /// </summary>
        public Action<string, InitramfsException>? PathFailed { get; init; }

        /// <summary>Called with each removal done, as a sentence.</summary>
        public Action<string>? Removed { get; init; }
    }

    /// <summary>What <see cref="Initramfs.Remove"/> did.</summary>
    public sealed class RemoveResult
    {
        /// <summary>Entries removed.</summary>
        public int Entries { get; init; }

        /// <summary>Bytes of file contents removed.</summary>
        public long Bytes { get; init; }

        /// <summary>Whether <see cref="RemoveOptions.Approve"/> declined a removal: the rootfs is then not trimmed as asked.</summary>
        public bool Declined { get; init; }

        /// <summary>One line saying what was removed and why (also recorded in the rootfs's changes unless declined).</summary>
        public string Summary { get; init; } = string.Empty;
    }
}
