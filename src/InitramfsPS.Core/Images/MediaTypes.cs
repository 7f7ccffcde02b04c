using System;
using System.Buffers.Binary;
using System.IO;

namespace InitramfsPS.Images
{
    /// <summary>How a layer's bytes are compressed.</summary>
    public enum LayerCompression
    {
        /// <summary>A plain tar.</summary>
        None,
        /// <summary>gzip.</summary>
        Gzip,
        /// <summary>zstd.</summary>
        Zstd,
    }

    /// <summary>The OCI and Docker media types this module reads.</summary>
    internal static class MediaTypes
    {
        /// <summary>OCI image manifest.</summary>
        public const string OciManifest = "application/vnd.oci.image.manifest.v1+json";
        /// <summary>OCI image index.</summary>
        public const string OciIndex = "application/vnd.oci.image.index.v1+json";
        /// <summary>OCI image config.</summary>
        public const string OciConfig = "application/vnd.oci.image.config.v1+json";
        /// <summary>Docker v2 schema 2 manifest.</summary>
        public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
        /// <summary>Docker manifest list.</summary>
        public const string DockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";
        /// <summary>Docker v2 schema 1 manifest (signed or not), which is not supported.</summary>
        public const string DockerSchema1 = "application/vnd.docker.distribution.manifest.v1+json";
        /// <summary>Signed Docker v2 schema 1 manifest.</summary>
        public const string DockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws";
        /// <summary>Docker image config.</summary>
        public const string DockerConfig = "application/vnd.docker.container.image.v1+json";
        /// <summary>OCI gzip layer.</summary>
        public const string OciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
        /// <summary>OCI zstd layer.</summary>
        public const string OciLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";
        /// <summary>OCI uncompressed layer.</summary>
        public const string OciLayerTar = "application/vnd.oci.image.layer.v1.tar";
        /// <summary>Docker gzip layer.</summary>
        public const string DockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip";

        /// <summary>
        /// The <c>artifactType</c> of an initramfs artifact. The same value as
        /// <c>Artifacts/ArtifactMediaTypes.ArtifactType</c>, which the part that reads images lies
        /// below and cannot use; a unit test holds the two equal.
        /// </summary>
        public const string InitramfsArtifact = "application/vnd.initramfsps.initramfs.v1";

        /// <summary>The config media type of an initramfs artifact (<c>ArtifactMediaTypes.Config</c>; as <see cref="InitramfsArtifact"/>).</summary>
        public const string InitramfsArtifactConfig = "application/vnd.initramfsps.initramfs.config.v1+json";

        /// <summary>Whether a media type names an index or manifest list.</summary>
        public static bool IsIndex(string? mediaType) => mediaType is OciIndex or DockerManifestList;

        /// <summary>Whether a media type names an image manifest.</summary>
        public static bool IsManifest(string? mediaType) => mediaType is OciManifest or DockerManifest;

        /// <summary>The compression a layer media type declares, or null when it is not a layer type we know.</summary>
        public static LayerCompression? LayerCompressionOf(string? mediaType)
        {
            if (mediaType is null)
            {
                return null;
            }
            // OCI: ...tar, ...tar+gzip, ...tar+zstd, also the nondistributable variants.
            // Docker: ...rootfs.diff.tar.gzip, ...rootfs.foreign.diff.tar.gzip, ...rootfs.diff.tar.
            if (mediaType.StartsWith("application/vnd.oci.image.layer.", StringComparison.Ordinal))
            {
                return mediaType.EndsWith("+gzip", StringComparison.Ordinal) ? LayerCompression.Gzip
                    : mediaType.EndsWith("+zstd", StringComparison.Ordinal) ? LayerCompression.Zstd
                    : mediaType.EndsWith(".tar", StringComparison.Ordinal) ? LayerCompression.None
                    : null;
            }
            if (mediaType.StartsWith("application/vnd.docker.image.rootfs.", StringComparison.Ordinal))
            {
                return mediaType.EndsWith(".tar.gzip", StringComparison.Ordinal) ? LayerCompression.Gzip
                    : mediaType.EndsWith(".tar.zstd", StringComparison.Ordinal) ? LayerCompression.Zstd
                    : mediaType.EndsWith(".tar", StringComparison.Ordinal) ? LayerCompression.None
                    : null;
            }
            return null;
        }

        /// <summary>The compression the first bytes show: gzip and zstd have magic numbers, a tar has none.</summary>
        public static LayerCompression Sniff(ReadOnlySpan<byte> head)
        {
            if (head.Length >= 2 && head[0] == 0x1f && head[1] == 0x8b)
            {
                return LayerCompression.Gzip;
            }
            if (head.Length >= 4 && head[0] == 0x28 && head[1] == 0xb5 && head[2] == 0x2f && head[3] == 0xfd)
            {
                return LayerCompression.Zstd;
            }
            return LayerCompression.None;
        }

        /// <summary>How many skippable frames <see cref="Sniff(Stream)"/> looks past.</summary>
        private const int MaxSkippableFrames = 16;

        /// <summary>
        /// The compression of the bytes of a seekable <paramref name="stream"/> from its position,
        /// which is left unchanged: as <see cref="Sniff(ReadOnlySpan{byte})"/>, and zstd also when
        /// skippable frames (magic 0x184D2A50 to 0x184D2A5F, RFC 8878 §3.1.2) come before a zstd
        /// frame, as zstd and the layer writers that put metadata first write them.
        /// </summary>
        public static LayerCompression Sniff(Stream stream)
        {
            long start = stream.Position;
            try
            {
                Span<byte> head = stackalloc byte[8];
                long at = start;
                for (int skipped = 0; ; skipped++)
                {
                    stream.Position = at;
                    int n = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
                    var found = Sniff(head[..n]);
                    if (skipped == 0 && found != LayerCompression.None)
                    {
                        return found;
                    }
                    if (skipped > 0 && found == LayerCompression.Zstd)
                    {
                        return LayerCompression.Zstd;
                    }
                    if (n < head.Length || skipped == MaxSkippableFrames
                        || (head[0] & 0xF0) != 0x50 || head[1] != 0x2A || head[2] != 0x4D || head[3] != 0x18)
                    {
                        return LayerCompression.None;
                    }
                    at += head.Length + (long)BinaryPrimitives.ReadUInt32LittleEndian(head[4..]);
                }
            }
            finally
            {
                stream.Position = start;
            }
        }
    }
}
