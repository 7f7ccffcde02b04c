using System;
using System.Collections.Generic;
using System.Globalization;
using InitramfsPS.Images;
using InitramfsPS.IO;

namespace InitramfsPS.Artifacts
{
    /// <summary>
    /// An initramfs artifact found as a referrer of an image (Find-Initramfs): where it is, what it
    /// holds, and the image it was made from. Its <see cref="Reference"/> is pinned by digest, so
    /// Save-Initramfs pulls exactly what was listed.
    /// </summary>
    public sealed class InitramfsArtifact
    {
        internal InitramfsArtifact(string reference, Digest digest, string artifactType, Digest subject, string compression, long size, bool hasKernel,
            IReadOnlyDictionary<string, string> annotations)
        {
            ArtifactType = artifactType;
            Reference = reference;
            Digest = digest;
            Subject = subject;
            Compression = compression;
            Size = size;
            HasKernel = hasKernel;
            Annotations = annotations;
            Created = annotations.TryGetValue(ArtifactManifest.CreatedAnnotation, out var created)
                && DateTimeOffset.TryParse(created, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var when)
                ? when
                : null;
        }

        /// <summary><c>&lt;registry&gt;/&lt;repository&gt;@&lt;digest&gt;</c>: what Save-Initramfs -Reference takes.</summary>
        public string Reference { get; }

        /// <summary>The digest of the artifact's manifest.</summary>
        public Digest Digest { get; }

        /// <summary>The artifact type (<see cref="ArtifactMediaTypes.ArtifactType"/>).</summary>
        public string ArtifactType { get; }

        /// <summary>The image manifest (or index) it refers to: the image it was made from.</summary>
        public Digest Subject { get; }

        /// <summary>When it was made (<c>org.opencontainers.image.created</c>), when the publisher said.</summary>
        public DateTimeOffset? Created { get; }

        /// <summary>Bytes of the archive (its parts added up; the kernel not counted).</summary>
        public long Size { get; }

        /// <summary>The archive's compression: none, gzip or zstd.</summary>
        public string Compression { get; }

        /// <summary>Whether a kernel ships with it (Save-Initramfs -KernelPath writes it).</summary>
        public bool HasKernel { get; }

        /// <summary>The manifest's annotations (base image name and digest, created, ...).</summary>
        public IReadOnlyDictionary<string, string> Annotations { get; }

        /// <summary>The source image the publisher named (<c>org.opencontainers.image.base.name</c>), if any.</summary>
        public string? BaseName => Annotations.TryGetValue("org.opencontainers.image.base.name", out var name) ? name : null;

        /// <summary>Like <c>127.0.0.1:5000/app@sha256:… zstd 3.4 MB with kernel 2026-12-07T12:00:00Z</c>.</summary>
        public override string ToString() => string.Create(CultureInfo.InvariantCulture,
            $"{Reference} {Compression} {Units.Bytes(Size)}{(HasKernel ? " with kernel" : string.Empty)}{(Created is { } c ? " " + c.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture) : string.Empty)}");
    }
}
