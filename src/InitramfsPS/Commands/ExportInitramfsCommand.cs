using System;
using System.Globalization;
using System.Management.Automation;
using InitramfsPS.Boot;
using InitramfsPS.Compression;
using InitramfsPS.Errors;
using InitramfsPS.Export;
using InitramfsPS.IO;

namespace InitramfsPS.Commands
{
    /// <summary>Writes a rootfs as a cpio newc initramfs the Linux kernel boots.</summary>
    [Cmdlet(VerbsData.Export, "Initramfs", SupportsShouldProcess = true)]
    [OutputType(typeof(ExportReport))]
    public sealed class ExportInitramfsCommand : RootfsCmdlet
    {
        private bool exported;

        /// <summary>The archive to write; .cpio, .cpio.gz or .cpio.zst pick the compression.</summary>
        [Parameter(Mandatory = true, Position = 0)]
        [ValidateNotNullOrEmpty]
        public string Path { get; set; } = null!;

        /// <summary>The compression, overriding what the file name implies.</summary>
        [Parameter]
        public InitramfsCompression Compression { get; set; }

        /// <summary>Compression level: gzip 0–9 (default 6), zstd 1–19 (default 3).</summary>
        [Parameter]
        public int CompressionLevel { get; set; }

        /// <summary>
        /// Threads that compress parts at once (default: one per processor). The archive is the
        /// same bytes for any value: parts end at content-determined entry boundaries.
        /// </summary>
        [Parameter]
        [ValidateRange(1, 256)]
        public int Workers { get; set; }

        /// <summary>Write the archive even when /init would not start; the problems become warnings.</summary>
        [Parameter]
        public SwitchParameter Force { get; set; }

        /// <summary>Refuse to replace an existing file.</summary>
        [Parameter]
        public SwitchParameter NoClobber { get; set; }

        /// <summary>Do not add /dev, /dev/console, /proc, /sys, /tmp and /run.</summary>
        [Parameter]
        public SwitchParameter NoDefaultEntries { get; set; }

        /// <summary>Compress every part, neither copying parts of earlier exports from the part cache nor keeping this export's there.</summary>
        [Parameter]
        public SwitchParameter NoPartCache { get; set; }

        /// <summary>Clamp every mtime to at most this Unix time; defaults to $env:SOURCE_DATE_EPOCH when set.</summary>
        [Parameter]
        [ValidateRange(0, uint.MaxValue)]
        public long SourceDateEpoch { get; set; }

        /// <summary>The kernel that will boot the archive: checked first (decompressor, initrd support, architecture, devtmpfs); its errors refuse the export unless -Force.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string? Kernel { get; set; }

        /// <inheritdoc/>
        protected override void ProcessRecord()
        {
            string fullPath = string.Empty;
            if (!Guard(Path, () => fullPath = FileSystemPath(Path, "OutputPathNotFileSystem", "output path")))
            {
                return;
            }
            Guard(fullPath, () =>
            {
                if (exported)
                {
                    throw new InitramfsException("MultipleInputs", FailureKind.InvalidArgument,
                        $"Export-Initramfs received more than one rootfs for '{fullPath}'; export each to its own file.", fullPath);
                }
                var target = Initramfs.PlanExport(fullPath, Options(null, null));
                if (!ShouldProcess(fullPath, $"Write {target.Compression} initramfs"))
                {
                    return;
                }
                if (target.NameWarning is { } mismatch)
                {
                    WriteWarning(mismatch);
                }
                exported = true;
                var rootfs = RootfsToRead();
                if (rootfs is null)
                {
                    return;
                }
                const string activity = "Writing initramfs";
                ExportProgress? progress = null;
                var options = Options(Kernel is null ? null : KernelImage.Read(FileSystemPath(Kernel, "HostPathNotFileSystem", "kernel")),
                    new Reporter<ExportProgress>(p => progress = p));
                ExportReport report;
                var clock = System.Diagnostics.Stopwatch.StartNew();
                var cache = Cache;
                try
                {
                    // On a thread of its own, so that progress moves while a slow level compresses.
                    report = RunInBackground(token => Initramfs.Export(rootfs, fullPath, options, cache, token),
                        () => ShowProgress(activity, fullPath, progress, clock));
                }
                finally
                {
                    CompleteProgress(3, activity);
                }
                foreach (string warning in report.Warnings)
                {
                    WriteWarning(warning);
                }
                WriteObject(report);
            });
        }

        /// <summary>The parameters as the API's options; what is not bound stays null, for the API's defaults.</summary>
        private ExportOptions Options(KernelImage? kernel, IProgress<ExportProgress>? progress) => new()
        {
            Compression = MyInvocation.BoundParameters.ContainsKey(nameof(Compression)) ? Compression : null,
            Level = MyInvocation.BoundParameters.ContainsKey(nameof(CompressionLevel)) ? CompressionLevel : null,
            Workers = MyInvocation.BoundParameters.ContainsKey(nameof(Workers)) ? Workers : null,
            AddDefaultEntries = !NoDefaultEntries,
            UsePartCache = !NoPartCache,
            AllowUnbootable = Force,
            Overwrite = !NoClobber,
            SourceDateEpoch = MyInvocation.BoundParameters.ContainsKey(nameof(SourceDateEpoch)) ? SourceDateEpoch : null,
            Kernel = kernel,
            Progress = progress,
        };

        /// <summary>
        /// Bytes of cpio compressed against the archive's total, the file's size so far, and the
        /// seconds left at the rate so far: at level 19 the entries are written long before they
        /// are compressed, so an entry count would stand still.
        /// </summary>
        private void ShowProgress(string activity, string path, ExportProgress? progress, System.Diagnostics.Stopwatch clock)
        {
            long total = progress?.TotalBytes ?? 0;
            if (total == 0)
            {
                clock.Restart(); // the rate counts from the first byte written
                Progress(3, activity, $"{path}: checking the rootfs", 0);
                return;
            }
            long done = progress!.CompressedBytes;
            double seconds = clock.Elapsed.TotalSeconds;
            int remaining = done > 0 && seconds > 1 ? (int)Math.Ceiling((total - done) * seconds / done) : -1;
            string status = string.Create(CultureInfo.InvariantCulture,
                $"{path}: {Units.Bytes(done)} of {Units.Bytes(total)} of cpio compressed, {Units.Bytes(progress.WrittenBytes)} written, {Units.Bytes(progress.FileBytes)} in the file ({progress.EntriesWritten} of {progress.Entries} entries)");
            Progress(3, activity, status, (int)(done * 100 / total), secondsRemaining: remaining);
        }
    }
}
