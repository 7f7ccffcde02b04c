using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json;
using InitramfsPS.Cache;
using InitramfsPS.Errors;
using InitramfsPS.Images;

namespace InitramfsPS.Artifacts
{
    /// <summary>
    /// The manifest of an initramfs artifact as a reader sees it, checked: an OCI image manifest
    /// that names itself an initramfs artifact, a config of <see cref="ArtifactMediaTypes.Config"/>,
    /// part layers of one media type in order, and at most one kernel layer after them.
    /// </summary>
    internal sealed record ArtifactManifest(
        Digest Digest,
        Descriptor Config,
        IReadOnlyList<Descriptor> Parts,
        Descriptor? Kernel,
        IReadOnlyDictionary<string, string> Annotations,
        Descriptor? Subject)
    {
        /// <summary>
        /// The most layers an artifact may have. The content-defined parts of an export average a
        /// few MiB (design-notes "Content-defined parts"), so 16384 parts hold tens of GiB, more
        /// than a newc archive a kernel unpacks into memory; a manifest listing more is hostile.
        /// </summary>
        public const int MaxLayers = 16384;

        /// <summary>The most bytes the parts may add up to (64 GiB): past any archive a guest could unpack.</summary>
        public const long MaxArchiveSize = 64L << 30;

        /// <summary>The most bytes a kernel layer may be (1 GiB; a bzImage is 5 to 15 MiB, an uncompressed vmlinux a few hundred).</summary>
        public const long MaxKernelSize = 1L << 30;

        /// <summary>The most bytes the config blob may be; it is a few hundred.</summary>
        public const int MaxConfigSize = 64 << 10;

        /// <summary>The annotation of a layer that names its file (the kernel's).</summary>
        public const string TitleAnnotation = "org.opencontainers.image.title";

        /// <summary>The annotation that says when the artifact was made.</summary>
        public const string CreatedAnnotation = "org.opencontainers.image.created";

        /// <summary>The compression the part layers' media type says: none, gzip or zstd.</summary>
        public string Compression => Parts.Count == 0 ? "none" : CompressionOf(Parts[0].MediaType);

        /// <summary>Bytes of the archive: the parts' sizes added up.</summary>
        public long ArchiveSize => Parts.Sum(p => p.Size);

        /// <summary>The compression a part media type names.</summary>
        public static string CompressionOf(string? partMediaType) => partMediaType switch
        {
            ArtifactMediaTypes.PartZstd => "zstd",
            ArtifactMediaTypes.PartGzip => "gzip",
            _ => "none",
        };

        /// <summary>
        /// Parses verified manifest bytes (<paramref name="digest"/> is theirs). Anything but an
        /// initramfs artifact manifest is <c>NotInitramfsArtifact</c>; an artifact that breaks the
        /// contract (a layer of another type, parts of two compressions, two kernels, a part after
        /// the kernel, too many layers, sizes past the caps) is <c>ArtifactInvalid</c>.
        /// </summary>
        public static ArtifactManifest Parse(byte[] bytes, Digest digest, string? contentType, string reference)
        {
            using var doc = LayoutResolver.Parse(bytes, $"manifest {digest}");
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Invalid(digest, "is not a JSON object");
            }
            string? mediaType = Str(root, "mediaType") ?? contentType;
            bool indexLike = MediaTypes.IsIndex(mediaType) || (mediaType is null && root.TryGetProperty("manifests", out _));
            if (indexLike || !LayoutResolver.IsInitramfsArtifact(root))
            {
                string kind = indexLike ? "an image index" : mediaType is MediaTypes.OciManifest or MediaTypes.DockerManifest || root.TryGetProperty("layers", out _) ? "an image manifest" : $"a document of type '{mediaType ?? "unknown"}'";
                throw new InitramfsException("NotInitramfsArtifact", FailureKind.InvalidArgument,
                    $"{reference} ({digest}) is {kind}, not an initramfs artifact (artifactType {ArtifactMediaTypes.ArtifactType}): Save-Initramfs reads what Publish-Initramfs pushed. " +
                    "Use Get-OciImage for an image, and Find-Initramfs -Image <image> to list the artifacts made from it.", reference);
            }
            if (mediaType is not null && mediaType != MediaTypes.OciManifest)
            {
                throw Invalid(digest, $"has the media type '{mediaType}'; an artifact is an OCI image manifest ({MediaTypes.OciManifest})");
            }
            if (!root.TryGetProperty("config", out var configElement) || !root.TryGetProperty("layers", out var layersElement) || layersElement.ValueKind != JsonValueKind.Array)
            {
                throw Invalid(digest, "has no config or layers");
            }
            string what = $"manifest {digest}";
            var config = LayoutResolver.ParseDescriptor(configElement, what);
            if (config.MediaType != ArtifactMediaTypes.Config)
            {
                throw Invalid(digest, $"has a config of type '{config.MediaType}', not {ArtifactMediaTypes.Config}");
            }
            if (config.Size > MaxConfigSize)
            {
                throw new InitramfsException("BlobTooLarge", FailureKind.LimitExceeded,
                    $"The config of the artifact {digest} is {config.Size} bytes, says its manifest; it is read whole and limited to {MaxConfigSize >> 10} KiB.", config.Digest.ToString());
            }
            if (layersElement.GetArrayLength() > MaxLayers)
            {
                throw new InitramfsException("ArtifactTooLarge", FailureKind.LimitExceeded,
                    $"The artifact {digest} has {layersElement.GetArrayLength()} layers; at most {MaxLayers} are read.", digest.ToString());
            }
            var parts = new List<Descriptor>();
            Descriptor? kernel = null;
            foreach (var element in layersElement.EnumerateArray())
            {
                var layer = LayoutResolver.ParseDescriptor(element, what);
                if (ArtifactMediaTypes.IsPart(layer.MediaType))
                {
                    if (kernel is not null)
                    {
                        throw Invalid(digest, "has a part after the kernel layer; the parts come first, in archive order");
                    }
                    if (parts.Count > 0 && parts[0].MediaType != layer.MediaType)
                    {
                        throw Invalid(digest, $"mixes parts of '{parts[0].MediaType}' and '{layer.MediaType}'; an archive has one compression");
                    }
                    parts.Add(layer);
                }
                else if (layer.MediaType == ArtifactMediaTypes.Kernel)
                {
                    if (kernel is not null)
                    {
                        throw Invalid(digest, "has two kernel layers");
                    }
                    if (layer.Size > MaxKernelSize)
                    {
                        throw new InitramfsException("ArtifactTooLarge", FailureKind.LimitExceeded,
                            $"The kernel of the artifact {digest} is {layer.Size} bytes, says its manifest; at most {MaxKernelSize >> 20} MiB is read.", layer.Digest.ToString());
                    }
                    kernel = layer;
                }
                else
                {
                    throw Invalid(digest, $"has a layer of type '{layer.MediaType}', which is neither a part of the archive nor the kernel");
                }
            }
            if (parts.Count == 0)
            {
                throw Invalid(digest, "has no part layers");
            }
            if (parts.Sum(p => p.Size) is var total && total > MaxArchiveSize)
            {
                throw new InitramfsException("ArtifactTooLarge", FailureKind.LimitExceeded,
                    $"The parts of the artifact {digest} add up to {total} bytes, says its manifest; at most {MaxArchiveSize >> 30} GiB is read.", digest.ToString());
            }
            Descriptor? subject = root.TryGetProperty("subject", out var subjectElement) && subjectElement.ValueKind == JsonValueKind.Object
                ? LayoutResolver.ParseDescriptor(subjectElement, what)
                : null;
            return new ArtifactManifest(digest, config, parts, kernel, ReadAnnotations(root), subject);
        }

        /// <summary>
        /// Parses the verified config blob and checks it against the manifest: the compression the
        /// parts say, and the archive size they add up to. Names it does not know are ignored.
        /// </summary>
        public ArtifactConfig ReadConfig(byte[] bytes)
        {
            ArtifactConfig? config;
            try
            {
                config = JsonSerializer.Deserialize<ArtifactConfig>(bytes, ConfigJson);
            }
            catch (JsonException ex)
            {
                throw new InitramfsException("ArtifactInvalid", FailureKind.InvalidData,
                    $"The config {Config.Digest} of the artifact {Digest} is not an initramfs artifact config: {ex.Message}", Config.Digest.ToString(), ex);
            }
            if (config is null || !Images.Digest.TryParse(config.ArchiveDigest, out _))
            {
                throw Invalid(Digest, $"has a config ({Config.Digest}) without a valid archiveDigest");
            }
            if (config.ArchiveSize != ArchiveSize)
            {
                throw Invalid(Digest, $"has parts that add up to {ArchiveSize} bytes, but its config says the archive is {config.ArchiveSize}");
            }
            if (!string.Equals(config.Compression, Compression, StringComparison.OrdinalIgnoreCase))
            {
                throw Invalid(Digest, $"has {Compression} parts, but its config says the archive is {config.Compression}");
            }
            return config;
        }

        private static readonly JsonSerializerOptions ConfigJson = new()
        {
            PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
            MaxDepth = 16,
        };

        private static Dictionary<string, string> ReadAnnotations(JsonElement root)
        {
            var annotations = new Dictionary<string, string>(StringComparer.Ordinal);
            if (root.TryGetProperty("annotations", out var a) && a.ValueKind == JsonValueKind.Object)
            {
                foreach (var kv in a.EnumerateObject().Take(256))
                {
                    if (kv.Value.ValueKind == JsonValueKind.String)
                    {
                        annotations[kv.Name] = kv.Value.GetString()!;
                    }
                }
            }
            return annotations;
        }

        private static InitramfsException Invalid(Digest digest, string why) =>
            new("ArtifactInvalid", FailureKind.InvalidData, $"The initramfs artifact {digest} {why}.", digest.ToString());

        private static string? Str(JsonElement e, string name) =>
            e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
    }
}
