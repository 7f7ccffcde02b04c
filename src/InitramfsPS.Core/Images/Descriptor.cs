using System.Collections.Generic;
using System.Globalization;
using InitramfsPS.IO;

namespace InitramfsPS.Images
{
    /// <summary>An OCI content descriptor: what a manifest or index says about a blob.</summary>
    public sealed record Descriptor(string? MediaType, Digest Digest, long Size)
    {
        /// <summary>The platform an index entry declares.</summary>
        public Platform? Platform { get; init; }

        /// <summary>Annotations (an index entry's <c>org.opencontainers.image.ref.name</c> is its tag).</summary>
        public IReadOnlyDictionary<string, string> Annotations { get; init; } = new Dictionary<string, string>();
    }

    /// <summary>A layer of an image, in manifest order.</summary>
    public sealed record LayerDescriptor
    {
        /// <summary>1-based position in the manifest.</summary>
        public required int Index { get; init; }

        /// <summary>Media type (a docker archive has none; its compression is sniffed).</summary>
        public string? MediaType { get; init; }

        /// <summary>Digest of the bytes as stored (compressed).</summary>
        public required Digest Digest { get; init; }

        /// <summary>Size of the bytes as stored.</summary>
        public required long Size { get; init; }

        /// <summary>Digest of the uncompressed tar, from the config's rootfs.diff_ids.</summary>
        public Digest? DiffId { get; init; }

        /// <summary>Compression declared by the media type (or sniffed where there is none).</summary>
        public LayerCompression Compression { get; init; }

        /// <summary>How messages name the layer.</summary>
        public string DisplayName => string.Create(CultureInfo.InvariantCulture, $"layer {Index} ({Digest.ShortHex})");

        /// <inheritdoc/>
        public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Digest} {Compression} {Units.Bytes(Size)}");
    }
}
