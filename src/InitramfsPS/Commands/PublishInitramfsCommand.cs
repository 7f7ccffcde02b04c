using System;
using System.Globalization;
using System.Management.Automation;
using InitramfsPS.Artifacts;
using InitramfsPS.Compression;
using InitramfsPS.Errors;
using InitramfsPS.Export;
using InitramfsPS.IO;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Commands
{
    /// <summary>Pushes an initramfs (and its kernel) to a registry as an OCI artifact, found from its image as a referrer.</summary>
    [Cmdlet(VerbsData.Publish, "Initramfs", SupportsShouldProcess = true, DefaultParameterSetName = PathSet)]
    [OutputType(typeof(PublishReport))]
    public sealed class PublishInitramfsCommand : InitramfsCmdlet
    {
        private const string PathSet = "Path";
        private const string LiteralPathSet = "LiteralPath";
        private const string RootfsSet = "Rootfs";
        private const int ActivityId = 17;

        /// <summary>Where the artifact goes: <c>registry/repository:tag</c>.</summary>
        [Parameter(Mandatory = true, Position = 0)]
        [ValidateNotNullOrEmpty]
        public string Reference { get; set; } = null!;

        /// <summary>The archive to publish (.cpio, .cpio.gz, .cpio.zst); wildcards allowed, matching one file.</summary>
        [Parameter(Mandatory = true, Position = 1, ParameterSetName = PathSet)]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        public string Path { get; set; } = null!;

        /// <summary>The archive to publish, taken literally (no wildcards).</summary>
        [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet)]
        [Alias("PSPath", "LP")]
        [ValidateNotNullOrEmpty]
        public string LiteralPath { get; set; } = null!;

        /// <summary>A rootfs (or an image, expanded on the spot) to export on the way and publish; or Export-Initramfs's report, whose archive is published.</summary>
        [Parameter(Mandatory = true, ParameterSetName = RootfsSet, ValueFromPipeline = true)]
        [ValidateNotNull]
        public PSObject InputObject { get; set; } = null!;

        /// <summary>A kernel image (bzImage, Image, vmlinux) to ship with the archive, as the last layer.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string? Kernel { get; set; }

        /// <summary>The kernel command line to boot with, written into the artifact's config.</summary>
        [Parameter]
        public string? KernelArgument { get; set; }

        /// <summary>The image the archive was made from: base image annotations and, in the same registry, the subject. A rootfs names its own.</summary>
        [Parameter]
        [ArgumentCompleter(typeof(ImageReferenceCompleter))]
        [ValidateNotNullOrEmpty]
        public string? SourceImage { get; set; }

        /// <summary>For a rootfs: the compression of the archive exported on the way (default zstd).</summary>
        [Parameter(ParameterSetName = RootfsSet)]
        public InitramfsCompression Compression { get; set; } = InitramfsCompression.Zstd;

        /// <summary>For a rootfs: the compression level (gzip 0–9, zstd 1–19).</summary>
        [Parameter(ParameterSetName = RootfsSet)]
        public int CompressionLevel { get; set; }

        /// <summary>Registry credentials; without them the auth files (auth.json, ~/.docker/config.json) are used.</summary>
        [Parameter]
        [Credential]
        public PSCredential? Credential { get; set; }

        /// <summary>Allow plain, unencrypted HTTP to a registry that is not on this machine (loopback always may).</summary>
        [Parameter]
        public SwitchParameter AllowPlainHttp { get; set; }

        /// <inheritdoc/>
        protected override void ProcessRecord()
        {
            string what = ParameterSetName == RootfsSet ? InputObject.BaseObject.ToString() ?? "rootfs" : ParameterSetName == PathSet ? Path : LiteralPath;
            Guard(Reference, () =>
            {
                string? file = ParameterSetName switch
                {
                    PathSet => OneFile(Path),
                    LiteralPathSet => FileSystemPath(LiteralPath, "ArchivePathNotFileSystem", "archive"),
                    // The report of the export that wrote the archive (`Export-Initramfs x | Publish-Initramfs ref`),
                    // or a file from Get-ChildItem: the pipeline binds any object to InputObject first.
                    _ => InputObject.BaseObject switch
                    {
                        ExportReport written => written.Path,
                        System.IO.FileInfo info => info.FullName,
                        _ => null,
                    },
                };
                if (file is null && ParameterSetName != RootfsSet)
                {
                    return;
                }
                string? kernel = Kernel is null ? null : FileSystemPath(Kernel, "HostPathNotFileSystem", "kernel");
                if (!ShouldProcess(Reference, $"Publish {file ?? what}{(kernel is null ? string.Empty : " and the kernel " + kernel)} as an initramfs artifact"))
                {
                    return;
                }
                InitramfsProgress? pushed = null;
                ExportProgress? exported = null;
                var options = new PublishOptions
                {
                    Kernel = kernel,
                    KernelArgument = KernelArgument,
                    SourceImage = SourceImage,
                    Credential = Credential?.GetNetworkCredential(),
                    CredentialOrigin = "-Credential",
                    AllowPlainHttp = AllowPlainHttp,
                    Export = new ExportOptions
                    {
                        Compression = Compression,
                        Level = MyInvocation.BoundParameters.ContainsKey(nameof(CompressionLevel)) ? CompressionLevel : null,
                    },
                    Progress = new Reporter<InitramfsProgress>(p => pushed = p),
                    ExportProgress = new Reporter<ExportProgress>(p => exported = p),
                    Verbose = Verbose,
                    Warning = Warning,
                };
                Rootfs? rootfs = null;
                if (file is null)
                {
                    rootfs = InputObject.BaseObject switch
                    {
                        Rootfs r => Leased(r),
                        Images.OciImage image => ExpandImage(image, Initramfs.DefaultMaxLayerSize),
                        var other => throw new InitramfsException("InputNotRootfs", FailureKind.InvalidArgument,
                            $"Expected a Rootfs or an OciImage (from Get-OciImage or Expand-OciLayers), or -Path, got {other.GetType().Name} '{other}'.", other),
                    };
                }
                var cache = Cache;
                PublishReport report;
                try
                {
                    report = RunInBackground(token => rootfs is null
                        ? Initramfs.Publish(file!, Reference, options, cache, token)
                        : Initramfs.Publish(rootfs, Reference, options, cache, token),
                        () => ShowProgress(pushed, exported));
                }
                finally
                {
                    CompleteProgress(ActivityId, "Publishing initramfs");
                }
                WriteObject(report);
            });
        }

        /// <summary>The one file -Path names; wildcards must match exactly one.</summary>
        private string? OneFile(string path)
        {
            var files = ResolveHostPaths(new[] { path }, null, "ArchiveNotFound", "ArchivePathNotFileSystem", "archive", out bool failed);
            if (failed)
            {
                return null;
            }
            if (files.Count != 1)
            {
                throw new InitramfsException("ArchiveNotFound", FailureKind.InvalidArgument,
                    $"-Path '{path}' matches {files.Count} files; an artifact holds one archive.", path);
            }
            return files[0];
        }

        private void ShowProgress(InitramfsProgress? pushed, ExportProgress? exported)
        {
            const string activity = "Publishing initramfs";
            if (pushed is { Total: > 0 } p)
            {
                Progress(ActivityId, activity, string.Create(CultureInfo.InvariantCulture,
                    $"{p.Item}: {Units.Bytes(p.Done)} of {Units.Bytes(p.Total)} sent or found in the registry"), (int)(p.Done * 100 / p.Total));
            }
            else if (exported is { TotalBytes: > 0 } e)
            {
                Progress(ActivityId, activity, string.Create(CultureInfo.InvariantCulture,
                    $"exporting: {Units.Bytes(e.CompressedBytes)} of {Units.Bytes(e.TotalBytes)} of cpio compressed"), (int)(e.CompressedBytes * 100 / e.TotalBytes));
            }
            else
            {
                Progress(ActivityId, activity, $"{Reference}: reading the archive", 0);
            }
        }
    }
}
