using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.IO;
using System.Management.Automation;
using System.Runtime.ExceptionServices;
using System.Text.RegularExpressions;
using System.Threading;
using InitramfsPS.Boot;
using InitramfsPS.Compression;
using InitramfsPS.Errors;
using InitramfsPS.Export;
using InitramfsPS.Images;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Commands
{
    /// <summary>
    /// Boots an initramfs under QEMU, headless, and reports what its console showed: whether a
    /// line matched -Until, the workload's exit status, a panic, the time to /init.
    /// </summary>
    [Cmdlet(VerbsLifecycle.Start, "InitramfsVM", SupportsShouldProcess = true, DefaultParameterSetName = InputSet)]
    [OutputType(typeof(BootResult))]
    public sealed class StartInitramfsVMCommand : InitramfsCmdlet
    {
        private const string InputSet = "InputObject";
        private const string PathSet = "Path";
        private static readonly string[] ConsoleTags = { "InitramfsPS", "Console" };

        /// <summary>What to boot: a Rootfs or OciImage (exported to a temporary archive first), an archive path or file, or the report of Export-Initramfs or Save-Initramfs.</summary>
        [Parameter(Mandatory = true, ValueFromPipeline = true, ParameterSetName = InputSet)]
        [ValidateNotNull]
        public PSObject InputObject { get; set; } = null!;

        /// <summary>Archives to boot (wildcards allowed); each is booted in turn.</summary>
        [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet)]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        public string[] Path { get; set; } = null!;

        /// <summary>The kernel; default the newest readable /boot/vmlinuz-*.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string? Kernel { get; set; }

        /// <summary>The QEMU machine: microvm (default; no PCI, like Firecracker) or q35.</summary>
        [Parameter]
        [ValidateSet("microvm", "q35")]
        public string Machine { get; set; } = "microvm";

        /// <summary>Guest memory in bytes (256MB, 1GB), rounded up to whole MiB; by default the least the archive boots in and 128 MiB for the workload.</summary>
        [Parameter]
        [ValidateRange(32L << 20, 1L << 40)]
        public long Memory { get; set; }

        /// <summary>More words for the kernel command line, after console=ttyS0 panic=-1 printk.time=1.</summary>
        [Parameter]
        [ValidateNotNull]
        public string[] KernelArgument { get; set; } = Array.Empty<string>();

        /// <summary>A regular expression: the VM is stopped as soon as a console line matches it, and Matched is set.</summary>
        [Parameter]
        [ValidateNotNullOrEmpty]
        public string? Until { get; set; }

        /// <summary>Seconds before the VM is stopped (TimedOut is then set).</summary>
        [Parameter]
        [ValidateRange(1, 86400)]
        public int Timeout { get; set; } = 120;

        /// <inheritdoc/>
        protected override void ProcessRecord()
        {
            Regex? until = null;
            if (Until is not null)
            {
                try
                {
                    until = new Regex(Until, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
                }
                catch (ArgumentException ex)
                {
                    ThrowTerminatingError(ToErrorRecord(new InitramfsException("UntilInvalid", FailureKind.InvalidArgument,
                        $"-Until '{Until}' is not a regular expression: {ex.Message}", Until, ex), Until));
                }
            }
            if (ParameterSetName == PathSet)
            {
                foreach (string file in ResolveHostPaths(Path, null, "ArchiveNotFound", "ArchivePathNotFileSystem", "archive", out _))
                {
                    Guard(file, () => Boot(file, null, until));
                }
                return;
            }
            switch (InputObject.BaseObject)
            {
                case FileInfo file:
                    Guard(file.FullName, () => Boot(file.FullName, null, until));
                    return;
                case string text:
                    foreach (string file in ResolveHostPaths(new[] { text }, null, "ArchiveNotFound", "ArchivePathNotFileSystem", "archive", out _))
                    {
                        Guard(file, () => Boot(file, null, until));
                    }
                    return;
                case Rootfs or OciImage:
                    Guard(InputObject.BaseObject, () => Boot(null, InputObject.BaseObject, until));
                    return;
                case ExportReport exported:
                    Guard(exported.Path, () => Boot(exported.Path, null, until));
                    return;
                case SaveReport saved:
                    // The kernel saved with the archive boots it, unless -Kernel names another.
                    Guard(saved.Path, () => Boot(saved.Path, null, until, saved.KernelPath));
                    return;
                default:
                    var other = InputObject.BaseObject;
                    WriteError(new ErrorRecord(
                        new ArgumentException($"Expected a Rootfs, an OciImage or an archive path, got {other.GetType().Name} '{other}'."),
                        "InputNotRootfs", ErrorCategory.InvalidType, other));
                    return;
            }
        }

        /// <summary>Boots <paramref name="archive"/>, or <paramref name="source"/> exported to a temporary archive.</summary>
        private void Boot(string? archive, object? source, Regex? until, string? savedKernel = null)
        {
            string? temporary = archive is null
                ? System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"initramfsps-boot-{Guid.NewGuid():N}.cpio.zst")
                : null;
            var rootfs = source switch
            {
                Rootfs piped => Leased(piped),
                OciImage image => ExpandImage(image, Initramfs.DefaultMaxLayerSize),
                _ => null,
            };
            bool memoryGiven = MyInvocation.BoundParameters.ContainsKey(nameof(Memory));
            var options = new BootOptions
            {
                Archive = archive ?? temporary!,
                Kernel = Kernel is null ? savedKernel : FileSystemPath(Kernel, "HostPathNotFileSystem", "kernel"),
                Machine = Machine,
                Memory = memoryGiven ? Memory : DefaultMemoryFor(archive, rootfs),
                KernelArguments = KernelArgument,
                Until = until,
                Timeout = TimeSpan.FromSeconds(Timeout),
            };
            var plan = Initramfs.PlanBoot(options);
            string what = archive ?? $"a temporary export of {source}";
            WriteVerbose("QEMU command line: " + plan.CommandLine);
            if (!ShouldProcess(plan.CommandLine, $"Boot {what} under QEMU ({plan.Accelerator})"))
            {
                return;
            }
            try
            {
                if (temporary is not null)
                {
                    var report = Export(rootfs!, temporary);
                    if (!memoryGiven)
                    {
                        // The estimate counted the archive uncompressed; the export says what it takes.
                        plan = Initramfs.PlanBoot(options with { Memory = Initramfs.DefaultBootMemory(report) });
                    }
                }
                WriteObject(Run(plan, what));
            }
            finally
            {
                if (temporary is not null)
                {
                    DeleteTemporary(temporary);
                }
            }
        }

        /// <summary>
        /// The memory to boot with when -Memory is not given: the least the archive boots in
        /// (MemoryModel) and headroom for the workload. An archive is read for its entries; a rootfs
        /// not yet exported is counted as an uncompressed archive, until the export says better.
        /// </summary>
        private long DefaultMemoryFor(string? archive, Rootfs? rootfs) =>
            rootfs is not null ? Initramfs.DefaultBootMemory(rootfs) : Initramfs.DefaultBootMemory(archive!, Cache, CancellationToken);

        private ExportReport Export(Rootfs rootfs, string path)
        {
            var cache = Cache;
            var report = RunInBackground(
                token => Initramfs.Export(rootfs, path, new ExportOptions { Compression = InitramfsCompression.Zstd }, cache, token),
                () => Progress(5, "Booting an initramfs", $"Writing a temporary archive of {rootfs}", 0));
            foreach (string warning in report.Warnings)
            {
                WriteWarning(warning);
            }
            return report;
        }

        private static void DeleteTemporary(string path)
        {
            try
            {
                File.Delete(path);
            }
            catch (IOException)
            {
                // A temporary file that cannot be deleted now stays in the temporary directory.
            }
            catch (UnauthorizedAccessException)
            {
                // As above.
            }
        }

        /// <summary>
        /// Runs QEMU on a thread of its own, which lives until QEMU is gone (the kernel kills QEMU when
        /// the thread that started it ends), while this thread writes the console lines to the
        /// information stream and the progress.
        /// </summary>
        private BootResult Run(BootPlan plan, string what)
        {
            const string activity = "Booting an initramfs";
            var lines = new ConcurrentQueue<string>();
            BootResult? result = null;
            ExceptionDispatchInfo? failure = null;
            var thread = new Thread(() =>
            {
                try
                {
                    result = Initramfs.Boot(plan, lines.Enqueue, CancellationToken);
                }
#pragma warning disable CA1031 // rethrown on the pipeline thread below
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    failure = ExceptionDispatchInfo.Capture(ex);
                }
            })
            { IsBackground = true, Name = "InitramfsPS QEMU" };
            var clock = System.Diagnostics.Stopwatch.StartNew();
            thread.Start();
            string last = string.Empty;
            try
            {
                while (!thread.Join(100))
                {
                    last = Drain(lines) ?? last;
                    int seconds = (int)clock.Elapsed.TotalSeconds;
                    Progress(5, activity, $"{what} on {plan.Options.Machine}/{plan.Accelerator}, {seconds} s of {Timeout} s: {Truncate(last)}",
                        seconds * 100 / Timeout, secondsRemaining: Math.Max(0, Timeout - seconds));
                }
                Drain(lines);
            }
            finally
            {
                // On Ctrl+C the loop above ends by PipelineStoppedException while the QEMU thread
                // is still killing QEMU: wait for it (it kills at once on the cancelled token), so
                // that no QEMU outlives the cmdlet, and the token is not disposed under it.
                if (!thread.Join(TimeSpan.FromSeconds(30)) && !Stopping)
                {
                    WriteWarning("QEMU did not stop within 30 seconds of the request; the kernel kills it when PowerShell exits.");
                }
                CompleteProgress(5, activity);
            }
            failure?.Throw();
            return result!;
        }

        private string? Drain(ConcurrentQueue<string> lines)
        {
            string? last = null;
            while (lines.TryDequeue(out string? line))
            {
                WriteInformation(new InformationRecord(line, "Start-InitramfsVM"), ConsoleTags);
                if (line.Trim().Length > 0)
                {
                    last = line;
                }
            }
            return last;
        }

        private static string Truncate(string line) => line.Length <= 60 ? line : line[..60] + "…";
    }
}
