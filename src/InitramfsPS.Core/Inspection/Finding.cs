using System;
using System.Collections.Generic;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Inspection
{
    /// <summary>How much a finding matters: an Error keeps the VM from starting its workload.</summary>
    public enum FindingSeverity
    {
        /// <summary>The kernel or the workload would fail; Export-Initramfs refuses without -Force.</summary>
        Error,
        /// <summary>Likely a problem, not certainly one.</summary>
        Warning,
        /// <summary>For information (for example, an entry Export-Initramfs adds by itself).</summary>
        Info,
    }

    /// <summary>One thing Test-Initramfs found in a rootfs or archive.</summary>
    public sealed class Finding
    {
        /// <summary>Creates a finding.</summary>
        public Finding(FindingSeverity severity, string id, string path, string message, IReadOnlyList<string>? neededBy = null)
        {
            Severity = severity;
            Id = id;
            Path = path;
            Message = message;
            NeededBy = neededBy ?? Array.Empty<string>();
        }

        /// <summary>Error, Warning or Info.</summary>
        public FindingSeverity Severity { get; }

        /// <summary>Stable identifier, e.g. <c>LibraryMissing</c>.</summary>
        public string Id { get; }

        /// <summary>The path inside the rootfs the finding is about (for LibraryMissing, the library's name).</summary>
        public string Path { get; }

        /// <summary>What is wrong, for people.</summary>
        public string Message { get; }

        /// <summary>For InterpreterMissing and LibraryMissing: every binary that needs the missing file.</summary>
        public IReadOnlyList<string> NeededBy { get; }

        /// <summary>Like <c>Error LibraryMissing libc.so.6: …</c>.</summary>
        public override string ToString() => $"{Severity} {Id} {RootfsPath.Printable(Path)}: {Message}";
    }
}
