using System;
using System.Collections.Generic;
using System.Linq;
using System.Net;
using System.Net.Http;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Threading.Tasks;
using InitramfsPS.Artifacts;
using InitramfsPS.Core.Tests.Registry;
using InitramfsPS.Images;
using InitramfsPS.Registry;
using Xunit;

namespace InitramfsPS.Core.Tests.Artifacts
{
    /// <summary>
    /// Find-Initramfs over a stub registry: the referrers API (which docker-registry 2.8 in the
    /// Pester tests lacks), its artifactType filter applied again on our side, pages, bounds on a
    /// huge list, and the fallback tag when the API answers 404.
    /// </summary>
    public class ReferrerFinderTests
    {
        private const string Repository = "/v2/lib/app/";

        private static readonly byte[] ImageManifest = Encoding.UTF8.GetBytes(
            "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:" + new string('c', 64) + "\",\"size\":2},\"layers\":[]}");

        private static string DigestOf(byte[] bytes) => "sha256:" + Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant();

        /// <summary>An artifact manifest with <paramref name="parts"/> zstd parts of 100 bytes and a kernel when asked.</summary>
        internal static byte[] ArtifactManifest(int parts, bool kernel, string created, string? artifactType = ArtifactMediaTypes.ArtifactType)
        {
            var layers = Enumerable.Range(0, parts).Select(i => new Dictionary<string, object>
            {
                ["mediaType"] = ArtifactMediaTypes.PartZstd,
                ["digest"] = "sha256:" + i.ToString("x64", System.Globalization.CultureInfo.InvariantCulture),
                ["size"] = 100,
            }).ToList();
            if (kernel)
            {
                layers.Add(new Dictionary<string, object> { ["mediaType"] = ArtifactMediaTypes.Kernel, ["digest"] = "sha256:" + new string('e', 64), ["size"] = 5000 });
            }
            var manifest = new Dictionary<string, object?>
            {
                ["schemaVersion"] = 2,
                ["mediaType"] = MediaTypes.OciManifest,
                ["artifactType"] = artifactType,
                ["config"] = new Dictionary<string, object> { ["mediaType"] = ArtifactMediaTypes.Config, ["digest"] = "sha256:" + new string('f', 64), ["size"] = 300 },
                ["layers"] = layers,
                ["annotations"] = new Dictionary<string, string> { ["org.opencontainers.image.created"] = created },
            };
            return JsonSerializer.SerializeToUtf8Bytes(manifest);
        }

        private static byte[] Index(IEnumerable<(string Digest, int Size, string? ArtifactType)> entries) =>
            JsonSerializer.SerializeToUtf8Bytes(new
            {
                schemaVersion = 2,
                mediaType = MediaTypes.OciIndex,
                manifests = entries.Select(e => new Dictionary<string, object?>
                {
                    ["mediaType"] = MediaTypes.OciManifest,
                    ["digest"] = e.Digest,
                    ["size"] = e.Size,
                    ["artifactType"] = e.ArtifactType,
                }),
            });

        /// <summary>A registry that holds the image under tag 1.0, the given manifests by digest, and answers referrers with <paramref name="referrers"/> (null: 404, no API).</summary>
        private static StubRegistry Registry(Dictionary<string, byte[]> manifests, Func<HttpRequestMessage, HttpResponseMessage?>? referrers, Dictionary<string, byte[]>? tags = null)
        {
            return new StubRegistry((request, _) =>
            {
                string path = request.RequestUri!.AbsolutePath;
                if (path.StartsWith(Repository + "referrers/", StringComparison.Ordinal))
                {
                    return referrers?.Invoke(request) ?? StubRegistry.Json(HttpStatusCode.NotFound, "404 page not found");
                }
                string name = path[(Repository + "manifests/").Length..];
                if (name == "1.0")
                {
                    return StubRegistry.Ok(ImageManifest);
                }
                if (manifests.TryGetValue(name, out var bytes))
                {
                    return StubRegistry.Ok(bytes);
                }
                if (tags is not null && tags.TryGetValue(name, out var tagged))
                {
                    return StubRegistry.Ok(tagged, MediaTypes.OciIndex);
                }
                return StubRegistry.Json(HttpStatusCode.NotFound, "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"manifest unknown\"}]}");
            });
        }

        private static Task<IReadOnlyList<InitramfsArtifact>> Find(StubRegistry stub, List<string>? warnings = null) =>
            ReferrerFinder.FindAsync(StubRegistry.Client(stub), ImageReference.Parse(StubRegistry.Reference), Platform.Parse("linux/amd64"),
                warnings is null ? null : warnings.Add, TestContext.Current.CancellationToken);

        [Fact]
        public async Task The_referrers_API_lists_our_artifacts_and_the_filter_is_applied_again_when_the_registry_ignores_it()
        {
            var older = ArtifactManifest(2, kernel: true, "2026-01-01T00:00:00Z");
            var newer = ArtifactManifest(3, kernel: false, "2026-02-01T00:00:00Z");
            var signature = Encoding.UTF8.GetBytes("{\"not\":\"fetched\"}");
            var manifests = new Dictionary<string, byte[]> { [DigestOf(older)] = older, [DigestOf(newer)] = newer, [DigestOf(signature)] = signature };
            // This registry ignores ?artifactType= and lists a signature too.
            var stub = Registry(manifests, _ => StubRegistry.Ok(Index(new[]
            {
                (DigestOf(older), older.Length, (string?)ArtifactMediaTypes.ArtifactType),
                (DigestOf(signature), signature.Length, (string?)"application/vnd.example.signature"),
                (DigestOf(newer), newer.Length, (string?)ArtifactMediaTypes.ArtifactType),
            }), MediaTypes.OciIndex));

            var found = await Find(stub);

            Assert.Equal(new[] { DigestOf(newer), DigestOf(older) }, found.Select(a => a.Digest.ToString()));
            Assert.Equal("registry.example/lib/app@" + DigestOf(older), found[1].Reference);
            Assert.True(found[1].HasKernel);
            Assert.False(found[0].HasKernel);
            Assert.Equal(300, found[0].Size);
            Assert.Equal("zstd", found[0].Compression);
            Assert.Equal(DigestOf(ImageManifest), found[0].Subject.ToString());
            var seen = stub.Seen;
            var asked = seen.Single(s => s.Uri.AbsolutePath.Contains("/referrers/", StringComparison.Ordinal));
            Assert.Equal($"{Repository}referrers/{DigestOf(ImageManifest)}", asked.Uri.AbsolutePath);
            Assert.Equal("?artifactType=" + Uri.EscapeDataString(ArtifactMediaTypes.ArtifactType), asked.Uri.Query);
            Assert.DoesNotContain(seen, s => s.Uri.AbsolutePath.EndsWith(DigestOf(signature), StringComparison.Ordinal));
            Assert.DoesNotContain(seen, s => s.Uri.AbsolutePath.Contains("/manifests/sha256-", StringComparison.Ordinal));
        }

        [Fact]
        public async Task Without_the_API_the_fallback_tag_is_read_and_a_missing_tag_means_no_artifacts()
        {
            var artifact = ArtifactManifest(1, kernel: false, "2026-01-01T00:00:00Z");
            var manifests = new Dictionary<string, byte[]> { [DigestOf(artifact)] = artifact };
            var subject = Digest.Parse(DigestOf(ImageManifest));
            var tags = new Dictionary<string, byte[]> { [ReferrerFinder.FallbackTag(subject)] = Index(new[] { (DigestOf(artifact), artifact.Length, (string?)ArtifactMediaTypes.ArtifactType) }) };

            var found = await Find(Registry(manifests, null, tags));
            var none = await Find(Registry(manifests, null, null));

            Assert.Equal("sha256-" + subject.Hex, ReferrerFinder.FallbackTag(subject));
            Assert.Equal(DigestOf(artifact), Assert.Single(found).Digest.ToString());
            Assert.Empty(none);
        }

        [Fact]
        public async Task A_referrers_list_of_15000_entries_is_read_to_its_bound_and_describes_at_most_256_artifacts()
        {
            var artifact = ArtifactManifest(1, kernel: false, "2026-01-01T00:00:00Z");
            var huge = Index(Enumerable.Range(0, 15_000).Select(i => ("sha256:" + i.ToString("x64", System.Globalization.CultureInfo.InvariantCulture), artifact.Length, (string?)ArtifactMediaTypes.ArtifactType)));
            Assert.True(huge.Length < 4 << 20, "the list fits the 4 MiB cap, so the entry bound is what stops it");
            var stub = new StubRegistry((request, _) =>
            {
                string path = request.RequestUri!.AbsolutePath;
                return path.Contains("/referrers/", StringComparison.Ordinal) ? StubRegistry.Ok(huge, MediaTypes.OciIndex)
                    : path.EndsWith("/1.0", StringComparison.Ordinal) ? StubRegistry.Ok(ImageManifest)
                    // Every listed digest answers the same bytes: their digest does not match, so each is left out.
                    : StubRegistry.Ok(artifact);
            });
            var warnings = new List<string>();

            var found = await Find(stub, warnings);

            Assert.Empty(found);
            Assert.Contains(warnings, w => w.Contains($"more referrers than the {ReferrerFinder.MaxEntries} read", StringComparison.Ordinal));
            Assert.Contains(warnings, w => w.Contains($"only the first {ReferrerFinder.MaxArtifacts} are described", StringComparison.Ordinal));
            Assert.Equal(ReferrerFinder.MaxArtifacts, stub.Seen.Count(s => s.Uri.AbsolutePath.Contains("/manifests/sha256:", StringComparison.Ordinal)));
        }

        [Fact]
        public async Task A_referrers_answer_past_4_MiB_is_refused()
        {
            var stub = Registry(new Dictionary<string, byte[]>(), _ => StubRegistry.Ok(new byte[RegistryClient.ManifestCap + 1], MediaTypes.OciIndex));

            var ex = await Assert.ThrowsAsync<InitramfsPS.Errors.InitramfsException>(() => Find(stub));

            Assert.Equal("RegistryResponseTooLarge", ex.ErrorId);
            Assert.Contains("referrers", ex.Message, StringComparison.Ordinal);
        }

        [Fact]
        public async Task Pages_are_followed_through_Link_on_the_same_registry_only()
        {
            var first = ArtifactManifest(1, kernel: false, "2026-01-01T00:00:00Z");
            var second = ArtifactManifest(2, kernel: false, "2026-01-02T00:00:00Z");
            var manifests = new Dictionary<string, byte[]> { [DigestOf(first)] = first, [DigestOf(second)] = second };
            var stub = Registry(manifests, request =>
            {
                bool page2 = request.RequestUri!.Query.Contains("last=", StringComparison.Ordinal);
                var response = StubRegistry.Ok(Index(new[] { page2 ? (DigestOf(second), second.Length, (string?)ArtifactMediaTypes.ArtifactType) : (DigestOf(first), first.Length, (string?)ArtifactMediaTypes.ArtifactType) }), MediaTypes.OciIndex);
                response.Headers.TryAddWithoutValidation("Link", page2
                    ? "<https://elsewhere.example/v2/lib/app/referrers/x?last=2>; rel=\"next\""
                    : $"<{Repository}referrers/{DigestOf(ImageManifest)}?last=1>; rel=\"next\"");
                return response;
            });

            var found = await Find(stub);

            Assert.Equal(2, found.Count);
            Assert.Equal(2, stub.Seen.Count(s => s.Uri.AbsolutePath.Contains("/referrers/", StringComparison.Ordinal)));
            Assert.DoesNotContain(stub.Seen, s => s.Uri.Host == "elsewhere.example");
        }

        [Fact]
        public async Task For_an_index_both_the_platform_manifest_and_the_index_are_asked()
        {
            var amd64 = DigestOf(ImageManifest);
            var index = Encoding.UTF8.GetBytes("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[" +
                "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:" + new string('a', 64) + "\",\"size\":10,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\"}}," +
                "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" + amd64 + "\",\"size\":" + ImageManifest.Length + ",\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}");
            var stub = new StubRegistry((request, _) => request.RequestUri!.AbsolutePath.EndsWith("/1.0", StringComparison.Ordinal)
                ? StubRegistry.Ok(index, MediaTypes.OciIndex)
                : StubRegistry.Ok(Index(Array.Empty<(string, int, string?)>()), MediaTypes.OciIndex));

            var found = await Find(stub);

            Assert.Empty(found);
            var asked = stub.Seen.Where(s => s.Uri.AbsolutePath.Contains("/referrers/", StringComparison.Ordinal)).Select(s => s.Uri.AbsolutePath).ToList();
            Assert.Equal(new[] { $"{Repository}referrers/{amd64}", $"{Repository}referrers/{DigestOf(index)}" }, asked);
        }
    }
}
