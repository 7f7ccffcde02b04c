using InitramfsPS.Errors;
using InitramfsPS.Images;
using Xunit;

namespace InitramfsPS.Core.Tests.Images
{
    /// <summary>
    /// Image references: the registry grammar of the distribution project, and the <c>oci:</c> and
    /// <c>docker-archive:</c> forms of skopeo.
    /// </summary>
    public class ImageReferenceTests
    {
        private const string Hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

        [Theory]
        [InlineData("busybox", "docker.io", "library/busybox", "latest")]
        [InlineData("python:3.12-alpine", "docker.io", "library/python", "3.12-alpine")]
        [InlineData("127.0.0.1:5000/team/app:v2", "127.0.0.1:5000", "team/app", "v2")]
        [InlineData("localhost/app", "localhost", "app", "latest")]
        [InlineData("docker://alpine:3.20", "docker.io", "library/alpine", "3.20")]
        [InlineData("index.docker.io/user/app", "docker.io", "user/app", "latest")]
        [InlineData("ghcr.io/o/r/deep:Tag_1.0", "ghcr.io", "o/r/deep", "Tag_1.0")]
        [InlineData("myhost:5000/app", "myhost:5000", "app", "latest")]
        [InlineData("[::1]:5000/app:1", "[::1]:5000", "app", "1")]
        [InlineData("  busybox  ", "docker.io", "library/busybox", "latest")]
        [InlineData("a__b/c-d---e.f:x", "docker.io", "a__b/c-d---e.f", "x")]
        public void A_registry_reference_names_registry_repository_and_tag(string text, string registry, string repository, string tag)
        {
            ImageReference reference = ImageReference.Parse(text);
            Assert.Equal(ImageTransport.Registry, reference.Transport);
            Assert.Equal(registry, reference.Registry);
            Assert.Equal(repository, reference.Repository);
            Assert.Equal(tag, reference.Tag);
        }

        [Fact]
        public void A_digest_pins_the_manifest_and_a_tag_is_then_optional()
        {
            var pinned = ImageReference.Parse("alpine@sha256:" + Hex);
            Assert.Null(pinned.Tag);
            Assert.Equal("sha256:" + Hex, pinned.Digest.ToString());
            Assert.Equal("docker.io/library/alpine@sha256:" + Hex, pinned.ToString());

            var both = ImageReference.Parse("ghcr.io/o/r:v1@sha256:" + Hex);
            Assert.Equal(("v1", "ghcr.io/o/r:v1@sha256:" + Hex), (both.Tag, both.ToString()));
        }

        [Fact]
        public void The_familiar_and_canonical_names_and_the_API_host_of_Docker_Hub()
        {
            var hub = ImageReference.Parse("alpine:3.20");
            Assert.Equal(("alpine:3.20", "docker.io/library/alpine:3.20", "registry-1.docker.io"), (hub.FamiliarName, hub.CanonicalName, hub.ApiHost));
            var other = ImageReference.Parse("quay.io/team/app");
            Assert.Equal(("quay.io/team/app:latest", "quay.io"), (other.FamiliarName, other.ApiHost));
        }

        [Theory]
        [InlineData("UPPER/case")]
        [InlineData("app:")]
        [InlineData("app@sha256:1234")]
        [InlineData("")]
        [InlineData("   ")]
        [InlineData("busybox\n")]                 // read whole from a file
        [InlineData("bus\u001bybox")]
        [InlineData("app:-tag")]
        [InlineData("app/:tag")]
        [InlineData("a..b/app")]
        [InlineData("bad_host.io:x/app")]
        [InlineData("/app")]
        public void A_malformed_reference_is_refused_with_a_stable_id(string text)
        {
            InitramfsException e = Assert.Throws<InitramfsException>(() => ImageReference.Parse(text));
            Assert.Equal(("InvalidReference", FailureKind.InvalidArgument), (e.ErrorId, e.Kind));
            Assert.DoesNotMatch("[\\x00-\\x08\\x0b-\\x1f]", e.Message);
        }

        [Fact]
        public void A_repository_longer_than_255_characters_is_refused()
        {
            Assert.Equal("InvalidReference", Assert.Throws<InitramfsException>(() => ImageReference.Parse("team/" + new string('a', 251))).ErrorId);
            Assert.Equal(255, ImageReference.Parse("team/" + new string('a', 250)).Repository!.Length);
        }

        [Theory]
        [InlineData("oci:/tmp/layout", "/tmp/layout", null, null)]
        [InlineData("oci:layout:v1", "layout", "v1", null)]
        [InlineData("oci:/a:b:c", "/a", "b:c", null)]                 // the directory ends at the first colon
        [InlineData("oci:dir@sha256:" + Hex, "dir", null, "sha256:" + Hex)]
        [InlineData("oci:my@dir", "my@dir", null, null)]             // '@' without a digest is part of the path
        public void An_oci_layout_reference_names_the_directory_and_a_tag_or_digest(string text, string path, string? tag, string? digest)
        {
            var r = ImageReference.Parse(text);
            Assert.Equal(ImageTransport.OciLayout, r.Transport);
            Assert.Equal((path, tag, digest), (r.Path, r.Tag, r.Digest?.ToString()));
            Assert.Equal(text, r.ToString());
        }

        [Theory]
        [InlineData("docker-archive:/x/img.tar", "/x/img.tar", null, null)]
        [InlineData("docker-archive:img.tar:test/app:1.0", "img.tar", "test/app:1.0", null)]
        [InlineData("docker-archive:img.tar:busybox", "img.tar", "busybox:latest", null)]
        [InlineData("docker-archive:img.tar:docker.io/library/alpine:3", "img.tar", "alpine:3", null)]
        [InlineData("docker-archive:img.tar:@1", "img.tar", null, 1)]
        public void A_docker_archive_reference_names_the_file_and_the_image_in_it(string text, string path, string? tag, int? index)
        {
            var r = ImageReference.Parse(text);
            Assert.Equal(ImageTransport.DockerArchive, r.Transport);
            Assert.Equal((path, tag, index), (r.Path, r.Tag, r.ArchiveIndex));
        }

        [Theory]
        [InlineData("oci:")]
        [InlineData("oci::tag")]
        [InlineData("oci:dir:")]
        [InlineData("docker-archive:")]
        [InlineData("docker-archive::app")]
        [InlineData("docker-archive:img.tar:@x")]
        [InlineData("docker-archive:img.tar:@-1")]
        [InlineData("docker-archive:img.tar:App:1")]
        public void A_malformed_layout_or_archive_reference_is_refused(string text)
        {
            Assert.Equal("InvalidReference", Assert.Throws<InitramfsException>(() => ImageReference.Parse(text)).ErrorId);
        }
    }
}
