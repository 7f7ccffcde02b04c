using System;
using System.Collections.Generic;
using System.Globalization;

namespace InitramfsPS.Boot
{
    /// <summary>What booting an archive under QEMU showed: how the VM was started and what its console said.</summary>
    public sealed class BootResult
    {
        /// <summary>The kernel booted.</summary>
        public required string Kernel { get; init; }

        /// <summary>The archive given as the initrd (a temporary one, since removed, for a rootfs or image).</summary>
        public required string Archive { get; init; }

        /// <summary>The QEMU machine: microvm or q35.</summary>
        public required string Machine { get; init; }

        /// <summary>kvm when /dev/kvm was usable, else tcg (software emulation, about ten times slower).</summary>
        public required string Accelerator { get; init; }

        /// <summary>Guest memory in bytes.</summary>
        public long Memory { get; init; }

        /// <summary>The serial console's text, with terminal control sequences removed.</summary>
        public string Console { get; init; } = string.Empty;

        /// <summary>The workload's exit status, as a generated /init prints it; null when it printed none.</summary>
        public int? ExitStatus { get; init; }

        /// <summary>Kernel time from boot to running /init ("Run /init as init process"), from printk time stamps.</summary>
        public TimeSpan? TimeToInit { get; init; }

        /// <summary>The kernel's own initramfs unpacking, from "Trying to unpack rootfs image" to "Freeing initrd memory".</summary>
        public TimeSpan? UnpackTime { get; init; }

        /// <summary>The -Until pattern, if any.</summary>
        public string? Until { get; init; }

        /// <summary>
        /// What the kernel said when it could not unpack the whole archive ("write error": the rootfs,
        /// a tmpfs of half the memory, is full), or null. The workload may still have started from
        /// what was unpacked.
        /// </summary>
        public string? UnpackError { get; init; }

        /// <summary>Whether a console line matched -Until (the VM is then stopped).</summary>
        public bool Matched { get; init; }

        /// <summary>Whether the timeout ended the run.</summary>
        public bool TimedOut { get; init; }

        /// <summary>Whether the kernel panicked.</summary>
        public bool Panicked { get; init; }

        /// <summary>The "Kernel panic - not syncing: ..." line, when it panicked.</summary>
        public string? PanicLine { get; init; }

        /// <summary>QEMU's exit code (0 when the guest powered off); null when the VM was stopped.</summary>
        public int? QemuExitCode { get; init; }

        /// <summary>What QEMU wrote on its standard error (its own complaints, not the guest's).</summary>
        public string QemuError { get; init; } = string.Empty;

        /// <summary>Wall-clock time of the run.</summary>
        public TimeSpan Duration { get; init; }

        /// <summary>The QEMU program and its arguments.</summary>
        public IReadOnlyList<string> Arguments { get; init; } = Array.Empty<string>();

        /// <summary>The exact QEMU command line, quoted for a POSIX shell, to run by hand.</summary>
        public string CommandLine => QemuCommand.Quote(Arguments);

        /// <summary>Whether the guest powered itself off ("reboot: Power down" on the console).</summary>
        public bool PoweredOff { get; init; }

        /// <summary>
        /// How the run ended, in a word: Matched (-Until), Panicked, TimedOut, Stopped (Ctrl+C),
        /// QemuFailed (QEMU's own error), PoweredOff, or Reset: QEMU ended without a power-off, as it
        /// does under -no-reboot when the guest resets or dies before it can print (too little
        /// memory for the kernel, for one).
        /// </summary>
        public string Outcome =>
            Matched ? "Matched"
            : Panicked ? "Panicked"
            : TimedOut ? "TimedOut"
            : QemuExitCode is null ? "Stopped"
            : QemuExitCode != 0 ? "QemuFailed"
            : PoweredOff ? "PoweredOff"
            : "Reset";

        /// <inheritdoc/>
        public override string ToString()
        {
            string status = ExitStatus is { } s ? string.Create(CultureInfo.InvariantCulture, $", workload status {s}") : string.Empty;
            string init = TimeToInit is { } t ? string.Create(CultureInfo.InvariantCulture, $", /init at {t.TotalSeconds:0.00} s") : string.Empty;
            return string.Create(CultureInfo.InvariantCulture,
                $"{Outcome}: {System.IO.Path.GetFileName(Archive)} on {Machine}/{Accelerator}, {Memory >> 20} MiB{init}{status} ({Duration.TotalSeconds:0.0} s)");
        }
    }
}
