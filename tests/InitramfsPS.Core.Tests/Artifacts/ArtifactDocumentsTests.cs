using System;
using System.Collections.Generic;
using System.Text;
using System.Text.Json;
using InitramfsPS.Artifacts;
using InitramfsPS.Errors;
using InitramfsPS.Images;
using Xunit;

namespace InitramfsPS.Core.Tests.Artifacts
{
    public sealed class ArtifactDocumentsTests
    {
        private static readonly Digest A = Digest.Parse("sha256:" + new string('a', 64));
        private static readonly Digest B = Digest.Parse("sha256:" + new string('b', 64));
        private static readonly Digest C = Digest.Parse("sha256:" + new string('c', 64));

        private static ArtifactConfig Config() => new()
        {
            Architecture = "amd64",
            Compression = "zstd",
            KernelCommandLine = "console=ttyS0",
            EntryCount = 12,
            UncompressedSize = 4096,
            ArchiveSize = 1024,
            ArchiveDigest = A.ToString(),
            MinimumMemory = 64 << 20,
            ModuleVersion = "0.1.0",
        };

        [Fact]
        public void TheConfigIsCamelCaseJsonInDeclarationOrderAndTheSameBytesEachTime()
        {
            byte[] first = ArtifactDocuments.Config(Config());
            Assert.Equal(first, ArtifactDocuments.Config(Config()));
            Assert.Equal(
                "{\"os\":\"linux\",\"architecture\":\"amd64\",\"variant\":null,\"compression\":\"zstd\",\"kernelCommandLine\":\"console=ttyS0\"," +
                "\"entryCount\":12,\"uncompressedSize\":4096,\"archiveSize\":1024,\"archiveDigest\":\"" + A + "\",\"minimumMemory\":67108864,\"moduleVersion\":\"0.1.0\"}",
                Encoding.UTF8.GetString(first));
        }

        [Fact]
        public void TheManifestDependsOnlyOnItsInputsNotOnTheOrderAnnotationsWereAdded()
        {
            var config = new ArtifactDescriptor(ArtifactMediaTypes.Config, A, 300);
            var layers = new[]
            {
                new ArtifactDescriptor(ArtifactMediaTypes.PartZstd, B, 1000),
                new ArtifactDescriptor(ArtifactMediaTypes.Kernel, C, 2000) { Annotations = new Dictionary<string, string> { ["org.opencontainers.image.title"] = "vmlinuz" } },
            };
            var one = new Dictionary<string, string> { [ArtifactDocuments.Created] = "2026-01-01T00:00:00Z", [ArtifactDocuments.BaseName] = "r/app:1" };
            var other = new Dictionary<string, string> { [ArtifactDocuments.BaseName] = "r/app:1", [ArtifactDocuments.Created] = "2026-01-01T00:00:00Z" };
            var subject = new ArtifactDescriptor("application/vnd.oci.image.manifest.v1+json", C, 500);
            byte[] bytes = ArtifactDocuments.Manifest(config, layers, one, subject);
            Assert.Equal(bytes, ArtifactDocuments.Manifest(config, layers, other, subject));
            string json = Encoding.UTF8.GetString(bytes);
            Assert.StartsWith("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"artifactType\":\"application/vnd.initramfsps.initramfs.v1\",\"config\":", json);
            Assert.Contains("\"annotations\":{\"org.opencontainers.image.base.name\":\"r/app:1\",\"org.opencontainers.image.created\":\"2026-01-01T00:00:00Z\"}", json);
            using var doc = JsonDocument.Parse(bytes);
            Assert.Equal(2, doc.RootElement.GetProperty("layers").GetArrayLength());
            Assert.Equal("vmlinuz", doc.RootElement.GetProperty("layers")[1].GetProperty("annotations").GetProperty("org.opencontainers.image.title").GetString());
            Assert.Equal(C.ToString(), doc.RootElement.GetProperty("subject").GetProperty("digest").GetString());
            Assert.False(ArtifactDocuments.Manifest(config, layers, one, null).AsSpan().IndexOf("subject"u8) >= 0);
        }

        [Fact]
        public void TheFallbackIndexGainsTheArtifactOnceAndKeepsWhatItListed()
        {
            var ours = new ArtifactDescriptor(ArtifactDocuments.ManifestMediaType, B, 900) { ArtifactType = ArtifactMediaTypes.ArtifactType };
            byte[] created = ArtifactDocuments.AddReferrer(null, ours, "sha256-x")!;
            using (var doc = JsonDocument.Parse(created))
            {
                Assert.Equal(ArtifactMediaTypes.Index, doc.RootElement.GetProperty("mediaType").GetString());
                Assert.Equal(B.ToString(), Assert.Single(doc.RootElement.GetProperty("manifests").EnumerateArray()).GetProperty("digest").GetString());
            }
            Assert.Null(ArtifactDocuments.AddReferrer(created, ours, "sha256-x"));

            string someone = "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" + A + "\",\"size\":7,\"artifactType\":\"application/x-sbom\",\"annotations\":{\"k\":\"v\"}}";
            byte[] theirs = Encoding.UTF8.GetBytes("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[" + someone + "]}");
            string merged = Encoding.UTF8.GetString(ArtifactDocuments.AddReferrer(theirs, ours, "sha256-x")!);
            Assert.Contains(someone, merged);
            Assert.True(merged.IndexOf(someone, StringComparison.Ordinal) < merged.IndexOf(B.ToString(), StringComparison.Ordinal));
        }

        [Theory]
        [InlineData("not json")]
        [InlineData("[1,2]")]
        [InlineData("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"manifests\":[]}")]
        public void AFallbackTagThatIsNotAnIndexIsLeftAlone(string existing)
        {
            var ours = new ArtifactDescriptor(ArtifactDocuments.ManifestMediaType, B, 900);
            var ex = Assert.Throws<InitramfsException>(() => ArtifactDocuments.AddReferrer(Encoding.UTF8.GetBytes(existing), ours, "sha256-x"));
            Assert.Equal("ReferrersIndexInvalid", ex.ErrorId);
        }
    }
}
