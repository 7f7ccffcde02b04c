using System.Management.Automation;
using InitramfsPS.Boot;
using InitramfsPS.Images;
using InitramfsPS.Inspection;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Commands
{
    /// <summary>
    /// Checks whether a rootfs or an archive would boot and start its workload: /init, its
    /// interpreter, the program a generated /init runs, the program interpreters and shared
    /// libraries of every ELF program in PATH, /dev/console, and what a newc archive cannot hold.
    /// Writes findings.
    /// </summary>
    [Cmdlet(VerbsDiagnostic.Test, "Initramfs", DefaultParameterSetName = InputSet)]
    [OutputType(typeof(Finding))]
    public sealed class TestInitramfsCommand : InitramfsCmdlet
    {
        private const string InputSet = "InputObject";
        private const string PathSet = "Path";
        private const string LiteralPathSet = "LiteralPath";

        /// <summary>The rootfs or image to check (a piped FileInfo, or the report of Export-Initramfs or Save-Initramfs, is checked as an archive file).</summary>
        [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ParameterSetName = InputSet)]
        [ValidateNotNull]
        public PSObject InputObject { get; set; } = null!;

        /// <summary>Initramfs archive files to check (wildcards allowed).</summary>
        [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet)]
        [ValidateNotNullOrEmpty]
        public string[] Path { get; set; } = null!;

        /// <summary>Initramfs archive files to check, taken literally.</summary>
        [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
        [Alias("PSPath")]
        [ValidateNotNullOrEmpty]
        public string[] LiteralPath { get; set; } = null!;

        /// <summary>Also check that this kernel can boot it: initrd support, the decompressor, architecture, devtmpfs, virtio-mmio and vsock.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string? Kernel { get; set; }

        private KernelImage? kernel;

        /// <summary>The guest memory the VM will have (256MB, 1GB): below the least the archive boots in is an error finding (MemoryTooSmall), else the least is reported (MemoryMinimum).</summary>
        [Parameter]
        [ValidateRange(1L << 20, 1L << 50)]
        public long Memory { get; set; }

        /// <inheritdoc/>
        protected override void BeginProcessing()
        {
            if (Kernel is not null)
            {
                try
                {
                    kernel = KernelImage.Read(FileSystemPath(Kernel, "HostPathNotFileSystem", "kernel"));
                }
                catch (Errors.InitramfsException ex)
                {
                    ThrowTerminatingError(ToErrorRecord(ex, Kernel));
                }
            }
        }

        /// <inheritdoc/>
        protected override void ProcessRecord()
        {
            if (ParameterSetName != InputSet)
            {
                foreach (string file in ResolveHostPaths(ParameterSetName == LiteralPathSet ? null : Path, ParameterSetName == LiteralPathSet ? LiteralPath : null, "ArchiveNotFound", "ArchivePathNotFileSystem", "archive", out _))
                {
                    CheckArchive(file);
                }
                return;
            }
            switch (InputObject.BaseObject)
            {
                case System.IO.FileInfo piped:
                    // Get-ChildItem output binds here by value before -LiteralPath by property name.
                    CheckArchive(piped.FullName);
                    return;
                case Export.ExportReport exported:
                    CheckArchive(exported.Path);
                    return;
                case SaveReport saved:
                    CheckArchive(saved.Path);
                    return;
                case string text:
                    // A string is an archive path, piped or positional, as for Import-Initramfs.
                    foreach (string file in ResolveHostPaths(new[] { text }, null, "ArchiveNotFound", "ArchivePathNotFileSystem", "archive", out _))
                    {
                        CheckArchive(file);
                    }
                    return;
            }
            Guard(InputObject, () =>
            {
                Rootfs rootfs;
                switch (InputObject.BaseObject)
                {
                    case Rootfs r:
                        rootfs = Leased(r);
                        break;
                    case OciImage image:
                        rootfs = ExpandImage(image, Initramfs.DefaultMaxLayerSize);
                        break;
                    default:
                        var other = InputObject.BaseObject;
                        WriteError(new ErrorRecord(
                            new System.ArgumentException($"Expected a Rootfs, an OciImage (from Get-OciImage or Expand-OciLayers) or an archive file, got {other.GetType().Name} '{other}'."),
                            "InputNotRootfs", ErrorCategory.InvalidType, other));
                        return;
                }
                WriteObject(Initramfs.Test(rootfs, Options(), CancellationToken), enumerateCollection: true);
            });
        }

        private TestOptions Options() => new()
        {
            Kernel = kernel,
            Memory = MyInvocation.BoundParameters.ContainsKey(nameof(Memory)) ? Memory : null,
        };

        private void CheckArchive(string file)
        {
            Guard(file, () => WriteObject(Initramfs.TestArchive(file, Options(), Cache, CancellationToken), enumerateCollection: true));
        }
    }
}
