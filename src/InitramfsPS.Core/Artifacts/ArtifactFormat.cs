namespace InitramfsPS.Artifacts
{
    /// <summary>
    /// The media types of an initramfs artifact: an OCI 1.1 image manifest whose layers are the
    /// archive's compressed parts in order (their concatenation is the archive, byte for byte) and,
    /// when given, the kernel. Publish-Initramfs writes them, Save-Initramfs and Find-Initramfs read
    /// them; they are fixed here once so that writer and readers cannot drift apart.
    /// </summary>
    public static class ArtifactMediaTypes
    {
        /// <summary>The manifest's <c>artifactType</c>: an initramfs bundle of this module.</summary>
        public const string ArtifactType = "application/vnd.initramfsps.initramfs.v1";

        /// <summary>The config blob (<see cref="ArtifactConfig"/> as JSON).</summary>
        public const string Config = "application/vnd.initramfsps.initramfs.config.v1+json";

        /// <summary>A zstd part of the archive: one or more whole zstd frames.</summary>
        public const string PartZstd = "application/vnd.initramfsps.initramfs.part.v1.cpio+zstd";

        /// <summary>A gzip part of the archive: one or more whole gzip members.</summary>
        public const string PartGzip = "application/vnd.initramfsps.initramfs.part.v1.cpio+gzip";

        /// <summary>An uncompressed archive, as one layer.</summary>
        public const string PartCpio = "application/vnd.initramfsps.initramfs.part.v1.cpio";

        /// <summary>The kernel image (bzImage, Image, vmlinux) shipped with the archive.</summary>
        public const string Kernel = "application/vnd.initramfsps.kernel.v1";

        /// <summary>The referrers fallback index and the referrers API answer (OCI image index).</summary>
        public const string Index = "application/vnd.oci.image.index.v1+json";

        /// <summary>Whether a layer media type is a part of the archive.</summary>
        public static bool IsPart(string? mediaType) => mediaType is PartZstd or PartGzip or PartCpio;
    }

    /// <summary>
    /// The config blob of an initramfs artifact. JSON names are camelCase:
    /// <c>{"os":"linux","architecture":"amd64","variant":null,"compression":"zstd",
    /// "kernelCommandLine":"console=ttyS0","entryCount":1234,"uncompressedSize":123,
    /// "archiveSize":45,"archiveDigest":"sha256:…","minimumMemory":268435456,
    /// "moduleVersion":"0.1.0"}</c>. Readers ignore names they do not know.
    /// </summary>
    public sealed class ArtifactConfig
    {
        /// <summary>Operating system of the guest (<c>linux</c>).</summary>
        public string Os { get; init; } = "linux";

        /// <summary>Architecture of the archive's binaries (<c>amd64</c>, <c>arm64</c>).</summary>
        public string Architecture { get; init; } = string.Empty;

        /// <summary>Architecture variant, when there is one.</summary>
        public string? Variant { get; init; }

        /// <summary>The archive's compression: <c>none</c>, <c>gzip</c> or <c>zstd</c>.</summary>
        public string Compression { get; init; } = "none";

        /// <summary>The kernel command line to boot with, when given.</summary>
        public string? KernelCommandLine { get; init; }

        /// <summary>Entries in the archive.</summary>
        public int EntryCount { get; init; }

        /// <summary>Bytes of the uncompressed cpio stream.</summary>
        public long UncompressedSize { get; init; }

        /// <summary>Bytes of the archive file (the concatenated part layers).</summary>
        public long ArchiveSize { get; init; }

        /// <summary>Digest of the archive file (<c>sha256:…</c>), checked after the parts are joined.</summary>
        public string ArchiveDigest { get; init; } = string.Empty;

        /// <summary>Minimum guest memory in bytes from the preflight, when known.</summary>
        public long? MinimumMemory { get; init; }

        /// <summary>The InitramfsPS version that published the artifact.</summary>
        public string ModuleVersion { get; init; } = string.Empty;
    }
}
