using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using InitramfsPS.Errors;
using InitramfsPS.Images;
using InitramfsPS.IO;

namespace InitramfsPS.Cache
{
    /// <summary>
    /// Resolves a reference inside a blob store to one image: index.json or a digest, through any
    /// index to the manifest of one platform, then the config. Every blob is checked against its
    /// descriptor's size and digest before it is parsed.
    /// </summary>
    internal static class LayoutResolver
    {
        private const string RefNameAnnotation = "org.opencontainers.image.ref.name";

        /// <summary>Resolves <c>oci:dir[:tag|@digest]</c> in the layout at <paramref name="directory"/>.</summary>
        public static OciImage FromLayout(ImageReference reference, string directory, Platform platform)
        {
            if (!Directory.Exists(directory))
            {
                throw new InitramfsException("LayoutNotFound", FailureKind.NotFound,
                    $"The OCI image layout '{directory}' does not exist.", directory);
            }
            string indexPath = Path.Combine(directory, "index.json");
            if (!File.Exists(indexPath))
            {
                throw new InitramfsException("LayoutInvalid", FailureKind.InvalidData,
                    $"'{directory}' is not an OCI image layout: it has no index.json.", directory);
            }
            var store = new BlobStore(directory);
            Descriptor chosen;
            if (reference.Digest is { } digest)
            {
                long length;
                try
                {
                    length = store.LengthOf(digest, "manifest");
                }
                catch (InitramfsException ex) when (ex.ErrorId == "BlobMissing")
                {
                    throw new InitramfsException("ManifestNotFound", FailureKind.NotFound,
                        $"The layout '{directory}' has no blob {digest}.", digest.ToString(), ex);
                }
                chosen = new Descriptor(null, digest, length);
            }
            else
            {
                var indexBytes = ReadIndexJson(directory);
                var entries = ParseIndex(indexBytes, "index.json of " + directory);
                chosen = PickTagged(entries, reference.Tag, directory, platform);
            }
            return Resolve(reference, store, chosen, platform);
        }

        /// <summary>
        /// The tags (<c>org.opencontainers.image.ref.name</c> annotations of index.json) of the layout at
        /// <paramref name="directory"/>, in index order, each once: what <c>oci:dir:&lt;tag&gt;</c> takes. Reads
        /// only index.json (at most 4 MiB) and looks at its first <paramref name="maxEntries"/> entries;
        /// entries without a tag are left out. A directory that is not a layout is an error.
        /// </summary>
        public static IReadOnlyList<string> ListTags(string directory, int maxEntries = 10_000)
        {
            string indexPath = Path.Combine(directory, "index.json");
            if (!File.Exists(indexPath))
            {
                throw new InitramfsException("LayoutInvalid", FailureKind.InvalidData,
                    $"'{directory}' is not an OCI image layout: it has no index.json.", directory);
            }
            using var doc = Parse(ReadIndexJson(directory), "index.json of " + directory);
            var tags = new List<string>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("manifests", out var manifests) || manifests.ValueKind != JsonValueKind.Array)
            {
                throw new InitramfsException("IndexInvalid", FailureKind.InvalidData, $"The index.json of {directory} has no manifests array.", directory);
            }
            foreach (var entry in manifests.EnumerateArray().Take(maxEntries))
            {
                if (entry.ValueKind == JsonValueKind.Object && entry.TryGetProperty("annotations", out var annotations)
                    && Str(annotations, RefNameAnnotation) is { Length: > 0 } tag && seen.Add(tag))
                {
                    tags.Add(tag);
                }
            }
            return tags;
        }

        /// <summary>Resolves a descriptor (index or manifest) in <paramref name="store"/> to one image.</summary>
        public static OciImage Resolve(ImageReference reference, BlobStore store, Descriptor descriptor, Platform platform)
        {
            for (int depth = 0; depth < 4; depth++)
            {
                var document = ParseDocument(store.ReadVerified(descriptor, "manifest"), descriptor);
                if (document.Index is { } entries)
                {
                    descriptor = PickPlatform(entries, platform, descriptor.Digest.ToString());
                    continue;
                }
                var configDescriptor = document.Config!;
                var (config, layers) = ReadLayers(store, document, descriptor.Digest);
                var imagePlatform = Platform.Normalize(config.Os, string.IsNullOrEmpty(config.Architecture) ? platform.Architecture : config.Architecture, config.Variant);
                return new OciImage(reference, descriptor.Digest, document.MediaType, imagePlatform, configDescriptor.Digest, config, layers, store.Root);
            }
            throw new InitramfsException("ManifestInvalid", FailureKind.InvalidData, "Indexes are nested more than 4 deep.", descriptor.Digest.ToString());
        }

        /// <summary>
        /// Reads the config of an image manifest (verified, from <paramref name="store"/>) and pairs
        /// each layer with its diff_id.
        /// </summary>
        internal static (ImageConfig Config, List<LayerDescriptor> Layers) ReadLayers(BlobStore store, ManifestDocument document, Digest manifest)
        {
            var configDescriptor = document.Config!;
            var configBytes = store.ReadVerified(configDescriptor, "image config", 64 << 20);
            using var configDoc = Parse(configBytes, $"image config {configDescriptor.Digest}");
            var config = ImageConfig.Parse(configDoc.RootElement);
            var layers = new List<LayerDescriptor>();
            for (int i = 0; i < document.Layers.Count; i++)
            {
                var d = document.Layers[i];
                layers.Add(new LayerDescriptor
                {
                    Index = i + 1,
                    MediaType = d.MediaType,
                    Digest = d.Digest,
                    Size = d.Size,
                    DiffId = i < config.DiffIds.Count ? config.DiffIds[i] : null,
                    Compression = MediaTypes.LayerCompressionOf(d.MediaType)!.Value,
                });
            }
            CheckDiffIds(config, layers, manifest.ToString());
            return (config, layers);
        }

        /// <summary>An index (its entries) or an image manifest (its config and layers).</summary>
        internal sealed record ManifestDocument(string? MediaType, List<Descriptor>? Index, Descriptor? Config, List<Descriptor> Layers);

        /// <summary>Parses verified manifest bytes; refuses schema 1 and layers that are not tars.</summary>
        internal static ManifestDocument ParseDocument(byte[] bytes, Descriptor descriptor)
        {
            using var doc = Parse(bytes, $"manifest {descriptor.Digest}");
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new InitramfsException("ManifestInvalid", FailureKind.InvalidData, $"The manifest {descriptor.Digest} is not a JSON object.", descriptor.Digest.ToString());
            }
            string? mediaType = descriptor.MediaType ?? Str(root, "mediaType");
            if (mediaType is MediaTypes.DockerSchema1 or MediaTypes.DockerSchema1Signed
                || (root.TryGetProperty("schemaVersion", out var sv) && sv.ValueKind == JsonValueKind.Number && sv.TryGetInt32(out int version) && version == 1))
            {
                throw new InitramfsException("ManifestSchema1Unsupported", FailureKind.NotImplemented,
                    $"The manifest {descriptor.Digest} is Docker schema 1, which is deprecated and not supported; push the image again with a current tool.", descriptor.Digest.ToString());
            }
            if (IsInitramfsArtifact(root))
            {
                // Every image source (a registry pull, the cache, a layout) parses manifests here.
                throw new InitramfsException("ArtifactIsInitramfs", FailureKind.InvalidArgument,
                    $"The manifest {descriptor.Digest} is an initramfs artifact ({MediaTypes.InitramfsArtifact}), not an image: Get-OciImage and Expand-OciLayers read images. " +
                    "Pull the archive with Save-Initramfs -Reference <registry>/<repository>@<digest> -Path <file>.", descriptor.Digest.ToString());
            }
            if (MediaTypes.IsIndex(mediaType) || (mediaType is null && root.TryGetProperty("manifests", out _)))
            {
                return new ManifestDocument(mediaType, ParseIndex(bytes, $"index {descriptor.Digest}"), null, new List<Descriptor>());
            }
            if (!root.TryGetProperty("config", out var configElement) || !root.TryGetProperty("layers", out var layersElement)
                || layersElement.ValueKind != JsonValueKind.Array)
            {
                throw new InitramfsException("ManifestInvalid", FailureKind.InvalidData,
                    $"The manifest {descriptor.Digest} has no config or layers.", descriptor.Digest.ToString());
            }
            var layers = new List<Descriptor>();
            foreach (var l in layersElement.EnumerateArray())
            {
                var d = ParseDescriptor(l, $"manifest {descriptor.Digest}");
                if (MediaTypes.LayerCompressionOf(d.MediaType) is null)
                {
                    throw new InitramfsException("LayerMediaTypeUnsupported", FailureKind.NotImplemented,
                        $"Layer {layers.Count + 1} of {descriptor.Digest} has the media type '{d.MediaType}', which is not a tar layer this module can apply.", d.Digest.ToString());
                }
                layers.Add(d);
            }
            return new ManifestDocument(mediaType, null, ParseDescriptor(configElement, $"manifest {descriptor.Digest}"), layers);
        }

        /// <summary>An initramfs artifact names itself by its <c>artifactType</c>, or, from a writer that left that out, by its config's media type.</summary>
        internal static bool IsInitramfsArtifact(JsonElement manifest) =>
            Str(manifest, "artifactType") == MediaTypes.InitramfsArtifact
            || (manifest.TryGetProperty("config", out var config) && Str(config, "mediaType") == MediaTypes.InitramfsArtifactConfig);

        /// <summary>The config's diff_ids must name each layer once, or layers could be swapped unnoticed.</summary>
        internal static void CheckDiffIds(ImageConfig config, IReadOnlyList<LayerDescriptor> layers, string what)
        {
            if (config.DiffIds.Count != layers.Count)
            {
                throw new InitramfsException("ConfigLayerCountMismatch", FailureKind.InvalidData,
                    $"The image {what} has {layers.Count} layers but its config lists {config.DiffIds.Count} diff_ids.", what);
            }
        }

        internal static List<Descriptor> ParseIndex(byte[] bytes, string what)
        {
            using var doc = Parse(bytes, what);
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("manifests", out var manifests) || manifests.ValueKind != JsonValueKind.Array)
            {
                throw new InitramfsException("IndexInvalid", FailureKind.InvalidData, $"The {what} has no manifests array.", what);
            }
            return manifests.EnumerateArray().Select(m => ParseDescriptor(m, what)).ToList();
        }

        internal static Descriptor ParseDescriptor(JsonElement e, string what)
        {
            if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty("digest", out var digestElement) || digestElement.ValueKind != JsonValueKind.String
                || !e.TryGetProperty("size", out var sizeElement) || sizeElement.ValueKind != JsonValueKind.Number || !sizeElement.TryGetInt64(out long size) || size < 0)
            {
                throw new InitramfsException("DescriptorInvalid", FailureKind.InvalidData, $"The {what} has a descriptor without a valid digest and size.", what);
            }
            Platform? platform = null;
            if (e.TryGetProperty("platform", out var p) && p.ValueKind == JsonValueKind.Object)
            {
                platform = Platform.Normalize(Str(p, "os") ?? string.Empty, Str(p, "architecture") ?? string.Empty, Str(p, "variant"));
            }
            var annotations = new Dictionary<string, string>(StringComparer.Ordinal);
            if (e.TryGetProperty("annotations", out var a) && a.ValueKind == JsonValueKind.Object)
            {
                foreach (var kv in a.EnumerateObject())
                {
                    if (kv.Value.ValueKind == JsonValueKind.String)
                    {
                        annotations[kv.Name] = kv.Value.GetString()!;
                    }
                }
            }
            return new Descriptor(Str(e, "mediaType"), Digest.Parse(digestElement.GetString(), "digest in " + what), size)
            {
                Platform = platform,
                Annotations = annotations,
            };
        }

        private static Descriptor PickTagged(List<Descriptor> entries, string? tag, string directory, Platform platform)
        {
            if (tag is not null)
            {
                var match = entries.FirstOrDefault(e => e.Annotations.TryGetValue(RefNameAnnotation, out var t) && t == tag);
                if (match is null)
                {
                    throw new InitramfsException("TagNotFound", FailureKind.NotFound,
                        $"The layout '{directory}' has no image tagged '{tag}'. Tags: {TagList(entries)}.", tag);
                }
                return match;
            }
            if (entries.Count == 1)
            {
                return entries[0];
            }
            if (entries.Count > 1 && entries.All(e => e.Platform is not null))
            {
                return PickPlatform(entries, platform, directory);
            }
            throw new InitramfsException(entries.Count == 0 ? "LayoutEmpty" : "TagRequired",
                entries.Count == 0 ? FailureKind.NotFound : FailureKind.InvalidArgument,
                entries.Count == 0
                    ? $"The layout '{directory}' holds no image."
                    : $"The layout '{directory}' holds {entries.Count} images; name one with oci:{directory}:<tag>. Tags: {TagList(entries)}.",
                directory);
        }

        private static string TagList(List<Descriptor> entries)
        {
            var tags = entries.Select(e => e.Annotations.TryGetValue(RefNameAnnotation, out var t) ? t : null).Where(t => t is not null).ToList();
            return tags.Count == 0 ? "(none)" : string.Join(", ", tags);
        }

        internal static Descriptor PickPlatform(List<Descriptor> entries, Platform wanted, string what)
        {
            // Entries without a platform, or "unknown/unknown" (BuildKit attestations), are not images to run.
            var candidates = entries.Where(e => e.Platform is { } p && p.Os != "unknown" && p.Architecture != "unknown").ToList();
            var match = candidates.FirstOrDefault(e => e.Platform! == wanted)
                ?? candidates.FirstOrDefault(e => wanted.Matches(e.Platform!));
            if (match is null)
            {
                string available = candidates.Count == 0 ? "(none)" : string.Join(", ", candidates.Select(e => e.Platform!.ToString()).Distinct());
                throw new InitramfsException("PlatformNotFound", FailureKind.NotFound,
                    $"The image index {what} has no image for {wanted}. Platforms: {available}.", wanted.ToString());
            }
            return match;
        }

        /// <summary>
        /// The index.json of the layout at <paramref name="directory"/>, at most 4 MiB. As a blob
        /// (<see cref="BlobStore.OpenRead(Digest, string, out string)"/>), it may not be a symlink out of
        /// the layout, nor anything but a regular file (opening a FIFO would block forever).
        /// </summary>
        private static byte[] ReadIndexJson(string directory)
        {
            string path = Path.Combine(directory, "index.json");
            string? real = RegularFile.RealPath(path);
            if (real is null)
            {
                throw new InitramfsException("LayoutInvalid", FailureKind.InvalidData, $"'{directory}' is not an OCI image layout: it has no index.json.", directory);
            }
            if (RegularFile.RealPath(directory) is not { } realDirectory || !RegularFile.IsWithin(real, realDirectory))
            {
                throw new InitramfsException("LayoutInvalid", FailureKind.Security,
                    $"The index.json of '{directory}' is a symlink that leads out of the layout; it is not followed.", directory);
            }
            try
            {
                using var stream = RegularFile.OpenStream(real, 1 << 12);
                if (stream.Length > 4 << 20)
                {
                    throw new InitramfsException("BlobTooLarge", FailureKind.LimitExceeded, $"The index.json at '{path}' is larger than 4 MiB.", path);
                }
                var bytes = new byte[stream.Length];
                stream.ReadExactly(bytes);
                return bytes;
            }
            catch (NotRegularFileException ex)
            {
                throw new InitramfsException("LayoutInvalid", FailureKind.InvalidData,
                    $"The index.json of '{directory}' is {ex.Kind}, not a regular file; it is not read.", directory, ex);
            }
            catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
            {
                throw new InitramfsException("LayoutInvalid", FailureKind.InvalidData, $"'{directory}' is not an OCI image layout: it has no index.json.", directory, ex);
            }
        }

        private static readonly UTF8Encoding StrictUtf8 = new(false, true);

        internal static JsonDocument Parse(byte[] bytes, string what)
        {
            try
            {
                // JsonDocument checks UTF-8 only when a string is read (GetString throws
                // InvalidOperationException then): check it all here, where it is a clear error.
                StrictUtf8.GetCharCount(bytes);
                return JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 64 });
            }
            catch (DecoderFallbackException ex)
            {
                throw new InitramfsException("ManifestInvalid", FailureKind.InvalidData, $"The {what} is not valid JSON: it is not valid UTF-8.", what, ex);
            }
            catch (JsonException ex)
            {
                throw new InitramfsException("ManifestInvalid", FailureKind.InvalidData, $"The {what} is not valid JSON: {ex.Message}", what, ex);
            }
        }

        private static string? Str(JsonElement e, string name) =>
            e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
    }
}
