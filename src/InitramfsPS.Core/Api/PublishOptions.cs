using System;
using System.Net;
using InitramfsPS.Export;

namespace InitramfsPS
{
    /// <summary>How <see cref="Initramfs.Publish(string, string, PublishOptions?, InitramfsCache?, System.Threading.CancellationToken)"/> pushes an artifact.</summary>
    public sealed class PublishOptions
    {
        /// <summary>A kernel image (bzImage, Image, vmlinux) to ship with the archive, as the last layer.</summary>
        public string? Kernel { get; init; }

        /// <summary>The kernel command line to boot with, written into the artifact's config.</summary>
        public string? KernelArgument { get; init; }

        /// <summary>
        /// The image the archive was made from (a registry reference), for a published file: it
        /// names the base image in the annotations and, in the same registry, is the subject. A
        /// published rootfs names its own image.
        /// </summary>
        public string? SourceImage { get; init; }

        /// <summary>Registry credentials; without them the auth files (auth.json, ~/.docker/config.json) are used.</summary>
        public NetworkCredential? Credential { get; init; }

        /// <summary>Where <see cref="Credential"/> came from, for messages.</summary>
        public string CredentialOrigin { get; init; } = "the credential given";

        /// <summary>Allow plain HTTP to a registry that is not on this machine.</summary>
        public bool AllowPlainHttp { get; init; }

        /// <summary>For a rootfs: how it is exported on the way (compression and level; zstd by default).</summary>
        public ExportOptions? Export { get; init; }

        /// <summary>The artifact's creation time; null takes <c>$SOURCE_DATE_EPOCH</c> when set, else now.</summary>
        public DateTimeOffset? Created { get; init; }

        /// <summary>Bytes of the artifact's blobs sent or found in the registry (<see cref="ProgressStage.Publish"/>), and the export of a rootfs.</summary>
        public IProgress<InitramfsProgress>? Progress { get; init; }

        /// <summary>The export of a rootfs on the way, as <see cref="ExportOptions.Progress"/>.</summary>
        public IProgress<ExportProgress>? ExportProgress { get; init; }

        /// <summary>What the registry client does, scrubbed of secrets; called from worker threads.</summary>
        public Action<string>? Verbose { get; init; }

        /// <summary>Warnings (a subject in another repository); called from worker threads.</summary>
        public Action<string>? Warning { get; init; }
    }
}
