using System.Collections.Generic;
using System.Linq;
using System.Management.Automation;
using InitramfsPS.Cache;
using InitramfsPS.Compression;
using InitramfsPS.Export;
using InitramfsPS.IO;
using InitramfsPS.Images;
using InitramfsPS.Import;
using InitramfsPS.Inspection;
using InitramfsPS.Layers;
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

        /// <summary>The rootfs or image to check (a piped FileInfo is checked as an archive file).</summary>
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

        private Boot.KernelImage? kernel;

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
                    kernel = Boot.KernelImage.Read(FileSystemPath(Kernel, "HostPathNotFileSystem", "kernel"));
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
                        rootfs = ExpandImage(image, ExpandOptions.DefaultMaxLayerSize);
                        break;
                    default:
                        var other = InputObject.BaseObject;
                        WriteError(new ErrorRecord(
                            new System.ArgumentException($"Expected a Rootfs, an OciImage (from Get-OciImage or Expand-OciLayers) or an archive file, got {other.GetType().Name} '{other}'."),
                            "InputNotRootfs", ErrorCategory.InvalidType, other));
                        return;
                }
                // What Export-Initramfs would write: with the /init it would generate.
                var prepared = InitramfsExporter.Prepare(rootfs, addDefaultEntries: false);
                var options = new InspectionOptions
                {
                    ConsoleMissingSeverity = FindingSeverity.Info,
                    ConsoleMissingNote = "Export-Initramfs adds it (char 5:1) unless -NoDefaultEntries is given.",
                    Init = prepared.Init,
                };
                foreach (var finding in RootfsInspector.Inspect(prepared.Rootfs, options, CancellationToken))
                {
                    WriteObject(finding);
                }
                if (kernel is not null)
                {
                    WriteObject(Boot.KernelCheck.Check(kernel, prepared.Rootfs, null), enumerateCollection: true);
                }
                // Not exported yet: counted as an uncompressed archive, the most a compressed one can take.
                CheckMemory(prepared.Rootfs, InitramfsExporter.CpioSize(prepared.Rootfs), "/",
                    " (counted as an uncompressed archive; a .cpio.zst needs less, as Export-Initramfs's report says)");
            });
        }

        /// <summary>With -Memory: the least memory the archive boots in (Info), or an Error when -Memory is below it.</summary>
        private void CheckMemory(Rootfs rootfs, long archiveBytes, string path, string note)
        {
            if (!MyInvocation.BoundParameters.ContainsKey(nameof(Memory)))
            {
                return;
            }
            var footprint = Boot.ArchiveFootprint.Of(rootfs, archiveBytes);
            long minimum = Boot.MemoryModel.Minimum(footprint);
            string why = string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"the kernel, the {Units.Bytes(archiveBytes)} archive while it is unpacked, {Units.Bytes(footprint.FilePages)} of unpacked files and {footprint.Entries} entries, with a margin{note}");
            WriteObject(Memory < minimum
                ? new Finding(FindingSeverity.Error, "MemoryTooSmall", path,
                    $"The guest needs at least {Boot.MemoryModel.MiB(minimum)} to boot this ({why}); -Memory gives {Boot.MemoryModel.MiB(Memory)}. The kernel would fail to unpack it or panic.")
                : new Finding(FindingSeverity.Info, "MemoryMinimum", path,
                    $"The guest needs at least {Boot.MemoryModel.MiB(minimum)} to boot this ({why}); -Memory {Boot.MemoryModel.MiB(Memory)} leaves {Boot.MemoryModel.MiB(Memory - minimum)} for the workload."));
        }

        private void CheckArchive(string file)
        {
            Guard(file, () =>
            {
                var result = InitramfsImporter.Import(file, Cache, new ImportOptions(), CancellationToken);
                KeepCacheWithinBudget();
                var options = new InspectionOptions
                {
                    ConsoleMissingSeverity = FindingSeverity.Error,
                    ConsoleMissingNote = "The archive lacks it; the kernel's own built-in initramfs may still provide it.",
                };
                foreach (string note in result.Notes)
                {
                    WriteObject(new Finding(FindingSeverity.Warning, "ArchiveNote", file, note));
                }
                foreach (var finding in RootfsInspector.Inspect(result.Rootfs, options, CancellationToken))
                {
                    WriteObject(finding);
                }
                if (kernel is not null)
                {
                    var codecs = result.Parts.Select(p => p.Compression).Distinct()
                        .Select(c => c switch { "gzip" => InitramfsCompression.Gzip, "zstd" => InitramfsCompression.Zstd, _ => InitramfsCompression.None })
                        .Where(c => c != InitramfsCompression.None).ToList();
                    WriteObject(Boot.KernelCheck.Check(kernel, result.Rootfs, codecs), enumerateCollection: true);
                }
                CheckMemory(result.Rootfs, new System.IO.FileInfo(file).Length, file, string.Empty);
            });
        }
    }
}
