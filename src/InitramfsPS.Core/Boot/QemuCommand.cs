using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;
using System.Threading;
using InitramfsPS.Errors;

namespace InitramfsPS.Boot
{
    /// <summary>How to boot an archive: what <see cref="QemuCommand.Plan"/> turns into a QEMU command line.</summary>
    public sealed record BootOptions
    {
        /// <summary>The archive given as the initrd.</summary>
        public required string Archive { get; init; }

        /// <summary>The kernel; null for the newest readable /boot/vmlinuz-* (<see cref="Kernels.FindDefault"/>).</summary>
        public string? Kernel { get; init; }

        /// <summary>microvm (no PCI, virtio-mmio: the closest to Firecracker) or q35.</summary>
        public string Machine { get; init; } = "microvm";

        /// <summary>Guest memory in bytes (rounded up to whole MiB).</summary>
        public long Memory { get; init; } = 256L << 20;

        /// <summary>More kernel command line words, after the module's own.</summary>
        public IReadOnlyList<string> KernelArguments { get; init; } = Array.Empty<string>();

        /// <summary>Stop the VM once a console line matches.</summary>
        public Regex? Until { get; init; }

        /// <summary>Stop the VM after this long.</summary>
        public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(120);

        /// <summary>The QEMU program (found in PATH by name).</summary>
        public string Qemu { get; init; } = "qemu-system-x86_64";
    }

    /// <summary>A QEMU command line ready to run, and what it was made from.</summary>
    public sealed record BootPlan(BootOptions Options, string Kernel, string Accelerator, IReadOnlyList<string> Arguments)
    {
        /// <summary>The command line, quoted for a POSIX shell.</summary>
        public string CommandLine => QemuCommand.Quote(Arguments);
    }

    /// <summary>
    /// Boots an initramfs under QEMU, headless, with the serial console captured, and reads the
    /// kernel's log for what happened: the time to /init and the unpacking time (printk time
    /// stamps), a panic, the exit status a generated /init prints, a line the caller waits for.
    /// </summary>
    internal static class QemuCommand
    {
        /// <summary>Machines Start-InitramfsVM offers.</summary>
        public static readonly string[] Machines = { "microvm", "q35" };

        private static readonly Regex UnpackStart = new(@"^\[\s*(\d+\.\d+)\] Trying to unpack rootfs image as initramfs", RegexOptions.CultureInvariant);
        private static readonly Regex UnpackEnd = new(@"^\[\s*(\d+\.\d+)\] Freeing initrd memory", RegexOptions.CultureInvariant);
        private static readonly Regex RunInit = new(@"^\[\s*(\d+\.\d+)\] Run \S+ as init process", RegexOptions.CultureInvariant);
        private static readonly Regex UnpackFailed = new(@"Initramfs unpacking failed: (.*)$", RegexOptions.CultureInvariant);
        private static readonly Regex PowerDown = new(@"^\[\s*\d+\.\d+\] reboot: Power down", RegexOptions.CultureInvariant);
        private static readonly Regex Panic = new(@"Kernel panic - not syncing:.*", RegexOptions.CultureInvariant);
        private static readonly Regex Status = new(@"^initramfs: workload exited with status (\d+)\s*$", RegexOptions.CultureInvariant);
        private static readonly Regex ControlSequence = new(@"\x1B(\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])|[\x00-\x08\x0B-\x1F\x7F]", RegexOptions.CultureInvariant);

        /// <summary>
        /// The command line for <paramref name="options"/>: the kernel found, KVM when /dev/kvm can be
        /// opened (else TCG), the serial console on stdio, no reboot, and a kernel command line with
        /// printk time stamps and panic=-1 (a panic ends QEMU at once instead of hanging).
        /// </summary>
        public static BootPlan Plan(BootOptions options)
        {
            if (!Machines.Contains(options.Machine, StringComparer.Ordinal))
            {
                throw new InitramfsException("MachineUnsupported", FailureKind.InvalidArgument,
                    $"The machine '{options.Machine}' is not one of {string.Join(", ", Machines)}.", options.Machine);
            }
            string kernel = options.Kernel is null ? Kernels.FindDefault() : Kernels.Check(options.Kernel);
            bool kvm = KvmUsable();
            long mib = MemoryMiB(options.Memory);
            var append = new List<string> { "console=ttyS0", "panic=-1", "printk.time=1" };
            if (options.Machine == "microvm")
            {
                // microvm has no PCI; under TCG the kernel's TSC calibration sometimes hangs without a
                // given frequency (rig notes). Under KVM the host's TSC is used as it is.
                append.Add("pci=off");
                if (!kvm)
                {
                    append.Add("tsc_early_khz=2600000");
                }
            }
            append.AddRange(options.KernelArguments.Where(a => !string.IsNullOrWhiteSpace(a)));
            var arguments = new List<string>
            {
                options.Qemu,
                "-M", options.Machine,
                "-accel", kvm ? "kvm" : "tcg",
                "-m", mib.ToString(CultureInfo.InvariantCulture),
                "-no-reboot",
                "-nographic",
                "-kernel", kernel,
                "-initrd", options.Archive,
                "-append", string.Join(' ', append),
            };
            return new BootPlan(options, kernel, kvm ? "kvm" : "tcg", arguments);
        }

        /// <summary>
        /// Runs <paramref name="plan"/> until QEMU exits, a console line matches Until, the timeout
        /// passes or <paramref name="cancellationToken"/> is cancelled; QEMU is killed in the last three
        /// cases, and never outlives this call (nor, through PR_SET_PDEATHSIG, this process). Each
        /// console line goes to <paramref name="onLine"/> from a reader thread. Call it on a thread
        /// that lives as long as the call: the kernel sends the death signal when the thread that
        /// started QEMU ends.
        /// </summary>
        public static BootResult Run(BootPlan plan, Action<string>? onLine, CancellationToken cancellationToken)
        {
            var options = plan.Options;
            if (!File.Exists(options.Archive))
            {
                throw new InitramfsException("ArchiveNotFound", FailureKind.NotFound, $"The archive '{options.Archive}' does not exist.", options.Archive);
            }
            var start = new ProcessStartInfo
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            // setpriv (util-linux) makes the kernel kill QEMU when this process dies, even by SIGKILL.
            var command = File.Exists(DeathSignal[0]) ? DeathSignal.Concat(plan.Arguments) : plan.Arguments;
            start.FileName = command.First();
            foreach (string argument in command.Skip(1))
            {
                start.ArgumentList.Add(argument);
            }
            var console = new StringBuilder();
            var stderr = new StringBuilder();
            var gate = new object();
            bool matched = false;
            using var stop = new ManualResetEventSlim();
            var clock = Stopwatch.StartNew();
            Process process;
            // A stop that came before QEMU starts must not start it.
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                process = Process.Start(start) ?? throw new InvalidOperationException("Process.Start returned null.");
            }
            catch (System.ComponentModel.Win32Exception ex)
            {
                throw new InitramfsException("QemuNotFound", FailureKind.NotFound,
                    $"Cannot start '{options.Qemu}': {ex.Message}. Install QEMU (Debian: qemu-system-x86).", options.Qemu, ex);
            }
            using (process)
            {
                process.StandardInput.Close();
                process.OutputDataReceived += (_, e) =>
                {
                    if (e.Data is null)
                    {
                        return;
                    }
                    string line = ControlSequence.Replace(e.Data, string.Empty);
                    lock (gate)
                    {
                        // Bounded: a guest that prints without end must not fill memory.
                        if (console.Length < MaxConsole)
                        {
                            console.Append(line).Append('\n');
                        }
                        if (!matched && options.Until is { } until && until.IsMatch(line))
                        {
                            matched = true;
                            stop.Set();
                        }
                    }
                    onLine?.Invoke(line);
                };
                process.ErrorDataReceived += (_, e) =>
                {
                    if (e.Data is not null)
                    {
                        lock (gate)
                        {
                            if (stderr.Length < MaxConsole)
                            {
                                stderr.Append(e.Data).Append('\n');
                            }
                        }
                    }
                };
                process.BeginOutputReadLine();
                process.BeginErrorReadLine();
                bool timedOut = false;
                bool stopped = false;
                try
                {
                    using var exited = new ManualResetEventSlim();
                    process.EnableRaisingEvents = true;
                    process.Exited += (_, _) => exited.Set();
                    if (process.HasExited)
                    {
                        exited.Set();
                    }
                    int which = WaitHandle.WaitAny(new[] { exited.WaitHandle, stop.WaitHandle, cancellationToken.WaitHandle }, options.Timeout);
                    timedOut = which == WaitHandle.WaitTimeout;
                    stopped = which != 0;
                }
                finally
                {
                    if (!process.HasExited)
                    {
                        process.Kill(entireProcessTree: true);
                    }
                    process.WaitForExit();
                }
                cancellationToken.ThrowIfCancellationRequested();
                string text;
                lock (gate)
                {
                    text = console.ToString();
                }
                return Read(plan, text, stderr.ToString(), matched, timedOut && !matched, stopped ? null : process.ExitCode, clock.Elapsed);
            }
        }

        private static readonly string[] DeathSignal = { "/usr/bin/setpriv", "--pdeathsig", "KILL", "--" };

        /// <summary>Console text kept: 4 MiB of characters (a booting kernel prints about 30 KB).</summary>
        private const int MaxConsole = 4 << 20;

        private static BootResult Read(BootPlan plan, string console, string stderr, bool matched, bool timedOut, int? exitCode, TimeSpan duration)
        {
            double? unpackStart = null, unpackEnd = null, runInit = null;
            string? panic = null;
            int? status = null;
            bool poweredOff = false;
            string? unpackError = null;
            foreach (string line in console.Split('\n'))
            {
                unpackStart ??= Seconds(UnpackStart, line);
                unpackEnd ??= Seconds(UnpackEnd, line);
                runInit ??= Seconds(RunInit, line);
                poweredOff |= PowerDown.IsMatch(line);
                if (unpackError is null && UnpackFailed.Match(line) is { Success: true } u)
                {
                    unpackError = u.Groups[1].Value.Trim();
                }
                if (panic is null && Panic.Match(line) is { Success: true } p)
                {
                    panic = p.Value.Trim();
                }
                if (Status.Match(line) is { Success: true } s && int.TryParse(s.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int value))
                {
                    status = value;
                }
            }
            return new BootResult
            {
                Kernel = plan.Kernel,
                Archive = plan.Options.Archive,
                Machine = plan.Options.Machine,
                Accelerator = plan.Accelerator,
                Memory = MemoryMiB(plan.Options.Memory) << 20,
                Console = console,
                ExitStatus = status,
                TimeToInit = runInit is { } r ? TimeSpan.FromSeconds(r) : null,
                UnpackTime = unpackStart is { } a && unpackEnd is { } b && b >= a ? TimeSpan.FromSeconds(b - a) : null,
                Until = plan.Options.Until?.ToString(),
                Matched = matched,
                TimedOut = timedOut,
                Panicked = panic is not null,
                PanicLine = panic,
                PoweredOff = poweredOff,
                UnpackError = unpackError,
                QemuExitCode = exitCode,
                QemuError = stderr,
                Duration = duration,
                Arguments = plan.Arguments,
            };
        }

        private static double? Seconds(Regex regex, string line)
        {
            var m = regex.Match(line);
            return m.Success && double.TryParse(m.Groups[1].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out double s) ? s : null;
        }

        /// <summary>Guest memory as QEMU takes it: whole MiB, rounded up, at least 32.</summary>
        private static long MemoryMiB(long bytes) => Math.Max(32, (bytes + (1L << 20) - 1) >> 20);

        /// <summary>Whether this process can open /dev/kvm for reading and writing, as QEMU must.</summary>
        public static bool KvmUsable()
        {
            try
            {
                using var kvm = new FileStream("/dev/kvm", FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite, 1);
                return true;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return false;
            }
        }

        /// <summary>Quotes words for a POSIX shell, leaving plain ones as they are.</summary>
        public static string Quote(IEnumerable<string> words) => string.Join(' ', words.Select(w =>
            w.Length > 0 && w.All(c => char.IsAsciiLetterOrDigit(c) || "-_./=:,+@%".Contains(c, StringComparison.Ordinal))
                ? w
                : "'" + w.Replace("'", "'\\''", StringComparison.Ordinal) + "'"));
    }
}
