using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using InitramfsPS.IO;

namespace InitramfsPS.Images
{
    /// <summary>
    /// A resolved image: the reference, the manifest digest, the chosen platform, the config and
    /// the layers, with the layer blobs known to be present in a blob store (a layout or the cache).
    /// </summary>
    public sealed class OciImage
    {
        internal OciImage(ImageReference reference, Digest digest, string? manifestMediaType, Platform platform,
            Digest configDigest, ImageConfig config, IReadOnlyList<LayerDescriptor> layers, string blobDirectory)
        {
            Reference = reference;
            Digest = digest;
            ManifestMediaType = manifestMediaType;
            Platform = platform;
            ConfigDigest = configDigest;
            Config = config;
            Layers = layers;
            // The directory, not the store that resolved the image: the image outlives the command
            // that resolved it and must not keep that command's lease.
            BlobDirectory = blobDirectory;
        }

        /// <summary>The reference the image was resolved from.</summary>
        public ImageReference Reference { get; }

        /// <summary>The digest of the image manifest.</summary>
        public Digest Digest { get; }

        /// <summary>The manifest's media type (OCI or Docker v2 schema 2).</summary>
        public string? ManifestMediaType { get; }

        /// <summary>The platform of the image (from its config).</summary>
        public Platform Platform { get; }

        /// <summary>The digest of the image config.</summary>
        public Digest ConfigDigest { get; }

        /// <summary>Entrypoint, Cmd, Env, WorkingDir, User, Labels.</summary>
        public ImageConfig Config { get; }

        /// <summary>The layers, in the order they apply.</summary>
        public IReadOnlyList<LayerDescriptor> Layers { get; }

        /// <summary>Sum of the layers' stored (compressed) sizes.</summary>
        public long Size => Layers.Sum(l => l.Size);

        /// <summary>Where the layer blobs are: the layout or the cache.</summary>
        public string BlobDirectory { get; }

        /// <summary>Like <c>oci:./layout:app@sha256:… linux/amd64 3 layers 3.4 MB</c>.</summary>
        public override string ToString() =>
            string.Create(CultureInfo.InvariantCulture,
                $"{Reference}{(Reference.Digest is null ? $"@{Digest.Algorithm}:{Digest.ShortHex}…" : string.Empty)} {Platform} {Layers.Count} {(Layers.Count == 1 ? "layer" : "layers")} {Units.Bytes(Size)}");
    }
}
