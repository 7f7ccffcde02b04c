using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net;
using System.Net.Http;
using System.Security.Cryptography;
using System.Threading;
using System.Threading.Tasks;
using InitramfsPS.Errors;
using InitramfsPS.Images;
using InitramfsPS.Registry;
using Xunit;

namespace InitramfsPS.Core.Tests.Registry
{
    public sealed class RegistryPusherTests
    {
        private const int Chunk = 1000;

        private static readonly byte[] Blob = Enumerable.Range(0, 3500).Select(i => (byte)(i * 7)).ToArray();

        private static Descriptor BlobDescriptor => new(null, Digest.FromSha256(SHA256.HashData(Blob)), Blob.Length);

        /// <summary>
        /// An upload session of one blob, as a registry keeps it: the bytes it holds, answered in
        /// Range headers. <c>drop</c> says which body requests (counted from 1) are cut before
        /// anything of them arrives.
        /// </summary>
        private sealed class Session
        {
            public List<byte> Held { get; } = new();

            public bool Done { get; set; }

            public int Bodies { get; set; }

            public List<string> Calls { get; } = new();
        }

        private static StubRegistry Registry(Session session, Func<int, bool> drop, string location = "/v2/lib/app/blobs/uploads/s1?_state=x")
        {
            return new StubRegistry(async (request, _, ct) =>
            {
                string method = request.Method.Method;
                string path = request.RequestUri!.AbsolutePath;
                lock (session)
                {
                    session.Calls.Add($"{method} {path}");
                }
                if (method == "HEAD")
                {
                    return new HttpResponseMessage(session.Done ? HttpStatusCode.OK : HttpStatusCode.NotFound) { Content = new ByteArrayContent(Array.Empty<byte>()) };
                }
                if (method == "POST")
                {
                    var created = new HttpResponseMessage(HttpStatusCode.Accepted) { Content = new ByteArrayContent(Array.Empty<byte>()) };
                    created.Headers.Location = new Uri(location, UriKind.RelativeOrAbsolute);
                    return created;
                }
                if (method == "GET")
                {
                    var status = new HttpResponseMessage(HttpStatusCode.NoContent) { Content = new ByteArrayContent(Array.Empty<byte>()) };
                    status.Headers.TryAddWithoutValidation("Range", $"0-{Math.Max(0, session.Held.Count - 1)}");
                    status.Headers.Location = new Uri(location, UriKind.RelativeOrAbsolute);
                    return status;
                }
                byte[] body = await request.Content!.ReadAsByteArrayAsync(ct);
                if (drop(++session.Bodies))
                {
                    throw new HttpRequestException(HttpRequestError.ResponseEnded, "The response ended prematurely (a test's cut).");
                }
                session.Held.AddRange(body);
                if (method == "PATCH")
                {
                    var accepted = new HttpResponseMessage(HttpStatusCode.Accepted) { Content = new ByteArrayContent(Array.Empty<byte>()) };
                    accepted.Headers.TryAddWithoutValidation("Range", $"0-{session.Held.Count - 1}");
                    accepted.Headers.Location = new Uri(location, UriKind.RelativeOrAbsolute);
                    return accepted;
                }
                Assert.Contains("digest=" + Uri.EscapeDataString(BlobDescriptor.Digest.ToString()), request.RequestUri!.Query, StringComparison.Ordinal);
                session.Done = true;
                return new HttpResponseMessage(HttpStatusCode.Created) { Content = new ByteArrayContent(Array.Empty<byte>()) };
            });
        }

        private static async Task<BlobPushOutcome> Push(StubRegistry stub, RegistryLimits? limits = null)
        {
            using var client = StubRegistry.Client(stub, limits: limits);
            var pusher = new RegistryPusher(client, Chunk);
            return await pusher.PushBlobAsync(BlobDescriptor, BlobSource.FromBytes(Blob), null, null, CancellationToken.None);
        }

        [Fact]
        public async Task ALargeBlobGoesInChunksAndTheRestWithTheFinalPut()
        {
            var session = new Session();
            Assert.Equal(BlobPushOutcome.Uploaded, await Push(Registry(session, _ => false)));
            Assert.Equal(Blob, session.Held.ToArray());
            Assert.Equal(new[] { "HEAD", "POST", "PATCH", "PATCH", "PATCH", "PUT" }, session.Calls.Select(c => c.Split(' ')[0]));
        }

        [Fact]
        public async Task ACutUploadAsksWhatTheRegistryHoldsAndGoesOnFromThere()
        {
            var session = new Session();
            // the second PATCH is cut: the registry holds the first chunk only
            Assert.Equal(BlobPushOutcome.Uploaded, await Push(Registry(session, n => n == 2)));
            Assert.Equal(Blob, session.Held.ToArray());
            Assert.Equal(new[] { "HEAD", "POST", "PATCH", "PATCH", "GET", "PATCH", "PATCH", "PUT" }, session.Calls.Select(c => c.Split(' ')[0]));
        }

        [Fact]
        public async Task ABlobTheRepositoryHasIsNotSent()
        {
            var session = new Session { Done = true };
            Assert.Equal(BlobPushOutcome.Present, await Push(Registry(session, _ => false)));
            Assert.Equal(new[] { "HEAD /v2/lib/app/blobs/" + BlobDescriptor.Digest }, session.Calls);
        }

        [Fact]
        public async Task AnUploadThatKeepsDroppingEndsWithinItsAttempts()
        {
            var session = new Session();
            var ex = await Assert.ThrowsAsync<InitramfsException>(() => Push(Registry(session, _ => true), RegistryLimits.Default with { Attempts = 3 }));
            Assert.Equal("RegistryUnavailable", ex.ErrorId);
            Assert.Equal(3, session.Bodies);
        }

        [Fact]
        public async Task AnUploadSessionOnAnotherHostIsRefusedBeforeAnyByteGoesThere()
        {
            var session = new Session();
            var ex = await Assert.ThrowsAsync<InitramfsException>(() => Push(Registry(session, _ => false, "https://elsewhere.example/upload/1")));
            Assert.Equal("PushFailed", ex.ErrorId);
            Assert.Equal(0, session.Bodies);
        }

        [Fact]
        public async Task AManifestStoredUnderAnotherDigestIsAnError()
        {
            var stub = new StubRegistry((request, _) =>
            {
                var created = new HttpResponseMessage(HttpStatusCode.Created) { Content = new ByteArrayContent(Array.Empty<byte>()) };
                created.Headers.TryAddWithoutValidation("Docker-Content-Digest", "sha256:" + new string('0', 64));
                return created;
            });
            using var client = StubRegistry.Client(stub);
            var pusher = new RegistryPusher(client);
            var ex = await Assert.ThrowsAsync<InitramfsException>(() => pusher.PutManifestAsync("1.0", "application/vnd.oci.image.manifest.v1+json", StubRegistry.Manifest, CancellationToken.None));
            Assert.Equal("PushDigestMismatch", ex.ErrorId);
        }
    }
}
