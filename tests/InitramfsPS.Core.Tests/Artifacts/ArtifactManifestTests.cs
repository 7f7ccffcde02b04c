using System;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using InitramfsPS.Artifacts;
using InitramfsPS.Cache;
using InitramfsPS.Errors;
using InitramfsPS.Images;
using Xunit;

namespace InitramfsPS.Core.Tests.Artifacts
{
    /// <summary>What a reader accepts as an initramfs artifact, and what it refuses before downloading anything.</summary>
    public class ArtifactManifestTests
    {
        private static readonly string Hex = new('a', 64);

        private static Digest DigestOf(byte[] bytes) => Digest.FromSha256(SHA256.HashData(bytes));

        private static string Layer(string mediaType, int n, long size = 100) =>
            $"{{\"mediaType\":\"{mediaType}\",\"digest\":\"sha256:{n.ToString("x64", System.Globalization.CultureInfo.InvariantCulture)}\",\"size\":{size}}}";

        private static byte[] Manifest(string layers, string artifactType = "\"artifactType\":\"" + ArtifactMediaTypes.ArtifactType + "\",", string configType = ArtifactMediaTypes.Config, long configSize = 300) =>
            Encoding.UTF8.GetBytes("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\"," + artifactType +
                $"\"config\":{{\"mediaType\":\"{configType}\",\"digest\":\"sha256:{Hex}\",\"size\":{configSize}}},\"layers\":[{layers}]}}");

        private static ArtifactManifest Parse(byte[] bytes) => ArtifactManifest.Parse(bytes, DigestOf(bytes), null, "registry.example/lib/app:1");

        [Fact]
        public void The_media_types_the_image_reader_knows_an_artifact_by_are_those_of_the_contract()
        {
            Assert.Equal(ArtifactMediaTypes.ArtifactType, MediaTypes.InitramfsArtifact);
            Assert.Equal(ArtifactMediaTypes.Config, MediaTypes.InitramfsArtifactConfig);
        }

        [Fact]
        public void Parts_in_order_then_the_kernel_are_read_with_the_compression_and_size()
        {
            var manifest = Parse(Manifest(string.Join(",", Layer(ArtifactMediaTypes.PartGzip, 1, 10), Layer(ArtifactMediaTypes.PartGzip, 2, 20), Layer(ArtifactMediaTypes.Kernel, 3, 5000))));

            Assert.Equal(new[] { 1, 2 }, manifest.Parts.Select(p => Convert.ToInt32(p.Digest.Hex, 16)));
            Assert.Equal(30, manifest.ArchiveSize);
            Assert.Equal("gzip", manifest.Compression);
            Assert.Equal(5000, manifest.Kernel!.Size);
        }

        [Fact]
        public void A_writer_that_left_artifactType_out_is_known_by_its_config_media_type()
        {
            var manifest = Parse(Manifest(Layer(ArtifactMediaTypes.PartZstd, 1), artifactType: string.Empty));

            Assert.Equal("zstd", manifest.Compression);
        }

        [Theory]
        [InlineData("an image", "NotInitramfsArtifact")]
        [InlineData("a part after the kernel", "ArtifactInvalid")]
        [InlineData("two compressions", "ArtifactInvalid")]
        [InlineData("two kernels", "ArtifactInvalid")]
        [InlineData("a foreign layer", "ArtifactInvalid")]
        [InlineData("no parts", "ArtifactInvalid")]
        [InlineData("a huge kernel", "ArtifactTooLarge")]
        [InlineData("parts past 64 GiB", "ArtifactTooLarge")]
        [InlineData("too many layers", "ArtifactTooLarge")]
        [InlineData("a config past 64 KiB", "BlobTooLarge")]
        [InlineData("an index", "NotInitramfsArtifact")]
        public void A_manifest_that_breaks_the_contract_is_refused_with_its_id(string what, string id)
        {
            string part = Layer(ArtifactMediaTypes.PartZstd, 1), kernel = Layer(ArtifactMediaTypes.Kernel, 9);
            byte[] bytes = what switch
            {
                "an image" => Manifest(Layer(MediaTypes.OciLayerGzip, 1), artifactType: string.Empty, configType: MediaTypes.OciConfig),
                "a part after the kernel" => Manifest($"{kernel},{part}"),
                "two compressions" => Manifest($"{part},{Layer(ArtifactMediaTypes.PartGzip, 2)}"),
                "two kernels" => Manifest($"{part},{kernel},{kernel}"),
                "a foreign layer" => Manifest($"{part},{Layer("application/vnd.example.sbom", 2)}"),
                "no parts" => Manifest(kernel),
                "a huge kernel" => Manifest($"{part},{Layer(ArtifactMediaTypes.Kernel, 2, ArtifactManifest.MaxKernelSize + 1)}"),
                "parts past 64 GiB" => Manifest($"{Layer(ArtifactMediaTypes.PartZstd, 1, ArtifactManifest.MaxArchiveSize)},{Layer(ArtifactMediaTypes.PartZstd, 2, 1)}"),
                "a config past 64 KiB" => Manifest(part, configSize: ArtifactManifest.MaxConfigSize + 1),
                "an index" => Encoding.UTF8.GetBytes("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[]}"),
                _ => Manifest(string.Join(",", Enumerable.Repeat(part, ArtifactManifest.MaxLayers + 1))),
            };

            var ex = Assert.Throws<InitramfsException>(() => Parse(bytes));

            Assert.Equal(id, ex.ErrorId);
        }

        [Fact]
        public void A_config_whose_archive_size_or_compression_disagrees_with_the_parts_is_refused()
        {
            var manifest = Parse(Manifest($"{Layer(ArtifactMediaTypes.PartZstd, 1, 10)},{Layer(ArtifactMediaTypes.PartZstd, 2, 20)}"));
            static byte[] Config(long size, string compression) => Encoding.UTF8.GetBytes(
                $"{{\"os\":\"linux\",\"architecture\":\"amd64\",\"compression\":\"{compression}\",\"entryCount\":3,\"uncompressedSize\":99,\"archiveSize\":{size},\"archiveDigest\":\"sha256:{Hex}\",\"unknownName\":[1,2]}}");

            var good = manifest.ReadConfig(Config(30, "zstd"));

            Assert.Equal(3, good.EntryCount);
            Assert.Equal("ArtifactInvalid", Assert.Throws<InitramfsException>(() => manifest.ReadConfig(Config(31, "zstd"))).ErrorId);
            Assert.Equal("ArtifactInvalid", Assert.Throws<InitramfsException>(() => manifest.ReadConfig(Config(30, "gzip"))).ErrorId);
            Assert.Equal("ArtifactInvalid", Assert.Throws<InitramfsException>(() => manifest.ReadConfig(Encoding.UTF8.GetBytes("{\"archiveSize\":\"thirty\"}"))).ErrorId);
        }

        [Fact]
        public void The_image_reader_refuses_an_artifact_naming_Save_Initramfs()
        {
            foreach (var bytes in new[] { Manifest(Layer(ArtifactMediaTypes.PartZstd, 1)), Manifest(Layer(ArtifactMediaTypes.PartZstd, 1), artifactType: string.Empty) })
            {
                var ex = Assert.Throws<InitramfsException>(() => LayoutResolver.ParseDocument(bytes, new Descriptor(null, DigestOf(bytes), bytes.Length)));

                Assert.Equal("ArtifactIsInitramfs", ex.ErrorId);
                Assert.Contains("Save-Initramfs", ex.Message, StringComparison.Ordinal);
            }
        }
    }
}
