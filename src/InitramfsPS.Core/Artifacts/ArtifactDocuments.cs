using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Encodings.Web;
using System.Text.Json;
using InitramfsPS.Errors;
using InitramfsPS.Images;

namespace InitramfsPS.Artifacts
{
    /// <summary>A descriptor as an artifact's manifest and the referrers index write it.</summary>
    internal sealed record ArtifactDescriptor(string MediaType, Digest Digest, long Size)
    {
        /// <summary>The artifactType of the manifest it points at (referrers index entries only).</summary>
        public string? ArtifactType { get; init; }

        /// <summary>Annotations, written sorted by key.</summary>
        public IReadOnlyDictionary<string, string>? Annotations { get; init; }
    }

    /// <summary>
    /// The JSON of an artifact: the config blob and the OCI 1.1 image manifest, and the referrers
    /// fallback index. The bytes depend only on what goes in (fixed member order, annotations
    /// sorted by key, no indentation), so the same archive and inputs give the same digests.
    /// </summary>
    internal static class ArtifactDocuments
    {
        /// <summary>The OCI image manifest media type.</summary>
        public const string ManifestMediaType = "application/vnd.oci.image.manifest.v1+json";

        /// <summary>The annotation of the artifact's creation time.</summary>
        public const string Created = "org.opencontainers.image.created";

        /// <summary>The annotation naming the source image.</summary>
        public const string BaseName = "org.opencontainers.image.base.name";

        /// <summary>The annotation of the source image's manifest digest.</summary>
        public const string BaseDigest = "org.opencontainers.image.base.digest";

        /// <summary>The annotation of a layer's file name (the kernel's).</summary>
        public const string Title = "org.opencontainers.image.title";

        /// <summary>The most entries a referrers fallback index may list before it is refused.</summary>
        public const int MaxReferrers = 10_000;

        private static readonly JsonSerializerOptions ConfigJson = new()
        {
            PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
            WriteIndented = false,
            // "+json" stays "+json" rather than "\u002Bjson": the same bytes, easier to read.
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        };

        /// <summary>The config blob: <see cref="ArtifactConfig"/> in camelCase, its properties in declaration order.</summary>
        public static byte[] Config(ArtifactConfig config) => JsonSerializer.SerializeToUtf8Bytes(config, ConfigJson);

        /// <summary>The artifact's image manifest.</summary>
        public static byte[] Manifest(ArtifactDescriptor config, IReadOnlyList<ArtifactDescriptor> layers, IReadOnlyDictionary<string, string> annotations, ArtifactDescriptor? subject)
        {
            return Write(w =>
            {
                w.WriteStartObject();
                w.WriteNumber("schemaVersion", 2);
                w.WriteString("mediaType", ManifestMediaType);
                w.WriteString("artifactType", ArtifactMediaTypes.ArtifactType);
                w.WritePropertyName("config");
                WriteDescriptor(w, config);
                w.WriteStartArray("layers");
                foreach (var layer in layers)
                {
                    WriteDescriptor(w, layer);
                }
                w.WriteEndArray();
                if (subject is not null)
                {
                    w.WritePropertyName("subject");
                    WriteDescriptor(w, subject);
                }
                WriteAnnotations(w, annotations);
                w.WriteEndObject();
            });
        }

        /// <summary>
        /// The referrers fallback index (the tag <c>&lt;alg&gt;-&lt;hex&gt;</c> of the subject) with
        /// <paramref name="entry"/> in it: <paramref name="existing"/> (null when the tag is new)
        /// with the entry added at the end, its other entries kept as they were. Null when the entry
        /// is listed already (nothing to write).
        /// </summary>
        public static byte[]? AddReferrer(byte[]? existing, ArtifactDescriptor entry, string tag)
        {
            var kept = new List<JsonElement>();
            JsonDocument? doc = null;
            try
            {
                if (existing is not null)
                {
                    try
                    {
                        doc = JsonDocument.Parse(existing, new JsonDocumentOptions { MaxDepth = 32 });
                    }
                    catch (JsonException ex)
                    {
                        throw Invalid(tag, "is not JSON: " + ex.Message);
                    }
                    var root = doc.RootElement;
                    if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("manifests", out var manifests) || manifests.ValueKind != JsonValueKind.Array)
                    {
                        throw Invalid(tag, "is not an OCI image index");
                    }
                    if (root.TryGetProperty("mediaType", out var mt) && (mt.ValueKind != JsonValueKind.String || mt.GetString() != ArtifactMediaTypes.Index))
                    {
                        throw Invalid(tag, "is not an OCI image index");
                    }
                    foreach (var m in manifests.EnumerateArray())
                    {
                        if (kept.Count >= MaxReferrers)
                        {
                            throw new InitramfsException("ReferrersIndexTooLarge", FailureKind.LimitExceeded,
                                $"The referrers index '{tag}' lists more than {MaxReferrers} manifests; it is not changed.", tag);
                        }
                        if (m.ValueKind == JsonValueKind.Object && m.TryGetProperty("digest", out var d) && d.ValueKind == JsonValueKind.String && d.GetString() == entry.Digest.ToString())
                        {
                            return null;
                        }
                        kept.Add(m);
                    }
                }
                return Write(w =>
                {
                    w.WriteStartObject();
                    w.WriteNumber("schemaVersion", 2);
                    w.WriteString("mediaType", ArtifactMediaTypes.Index);
                    w.WriteStartArray("manifests");
                    foreach (var m in kept)
                    {
                        m.WriteTo(w);
                    }
                    WriteDescriptor(w, entry);
                    w.WriteEndArray();
                    w.WriteEndObject();
                });
            }
            finally
            {
                doc?.Dispose();
            }
        }

        private static InitramfsException Invalid(string tag, string what) =>
            new("ReferrersIndexInvalid", FailureKind.InvalidData,
                $"The tag '{tag}' (where registries without the referrers API list an image's referrers) {what}; it is not changed.", tag);

        private static void WriteDescriptor(Utf8JsonWriter w, ArtifactDescriptor d)
        {
            w.WriteStartObject();
            w.WriteString("mediaType", d.MediaType);
            w.WriteString("digest", d.Digest.ToString());
            w.WriteNumber("size", d.Size);
            if (d.ArtifactType is not null)
            {
                w.WriteString("artifactType", d.ArtifactType);
            }
            if (d.Annotations is { Count: > 0 } annotations)
            {
                WriteAnnotations(w, annotations);
            }
            w.WriteEndObject();
        }

        private static void WriteAnnotations(Utf8JsonWriter w, IReadOnlyDictionary<string, string> annotations)
        {
            if (annotations.Count == 0)
            {
                return;
            }
            w.WriteStartObject("annotations");
            foreach (var (key, value) in annotations.OrderBy(a => a.Key, StringComparer.Ordinal))
            {
                w.WriteString(key, value);
            }
            w.WriteEndObject();
        }

        private static byte[] Write(Action<Utf8JsonWriter> write)
        {
            using var memory = new MemoryStream();
            using (var w = new Utf8JsonWriter(memory, new JsonWriterOptions { Indented = false, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            {
                write(w);
            }
            return memory.ToArray();
        }
    }
}
