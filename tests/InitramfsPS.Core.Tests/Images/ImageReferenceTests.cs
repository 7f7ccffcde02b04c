using InitramfsPS.Errors;
using InitramfsPS.Images;
using Xunit;

namespace InitramfsPS.Core.Tests.Images
{
    public class ImageReferenceTests
    {
        [Theory]
        [InlineData("busybox", "docker.io", "library/busybox", "latest")]
        [InlineData("python:3.12-alpine", "docker.io", "library/python", "3.12-alpine")]
        [InlineData("127.0.0.1:5000/team/app:v2", "127.0.0.1:5000", "team/app", "v2")]
        [InlineData("localhost/app", "localhost", "app", "latest")]
        public void A_registry_reference_names_registry_repository_and_tag(string text, string registry, string repository, string tag)
        {
            ImageReference reference = ImageReference.Parse(text);
            Assert.Equal(ImageTransport.Registry, reference.Transport);
            Assert.Equal(registry, reference.Registry);
            Assert.Equal(repository, reference.Repository);
            Assert.Equal(tag, reference.Tag);
        }

        [Theory]
        [InlineData("UPPER/case")]
        [InlineData("app:")]
        [InlineData("app@sha256:1234")]
        public void A_malformed_reference_is_refused_with_a_stable_id(string text)
        {
            InitramfsException e = Assert.Throws<InitramfsException>(() => ImageReference.Parse(text));
            Assert.False(string.IsNullOrEmpty(e.ErrorId));
        }
    }
}
