using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Boot
{
    /// <summary>What of an archive takes guest memory at boot.</summary>
    /// <param name="Entries">Entries of the archive: each becomes an inode and a dentry.</param>
    /// <param name="FilePages">File bytes rounded up to whole 4 KiB pages, a hardlink group once: what the unpacked files take in the page cache.</param>
    /// <param name="CompressedBytes">The archive as the boot loader places it in memory, kept there until the kernel has unpacked it.</param>
    internal sealed record ArchiveFootprint(int Entries, long FilePages, long CompressedBytes)
    {
        /// <summary>The footprint of <paramref name="rootfs"/> written into an archive of <paramref name="archiveBytes"/> bytes.</summary>
        public static ArchiveFootprint Of(Rootfs rootfs, long archiveBytes)
        {
            long pages = 0;
            var seen = new HashSet<HardlinkGroup>(ReferenceEqualityComparer.Instance);
            foreach (var e in rootfs.GetEntries())
            {
                if (e.Type == EntryType.File && (e.Hardlink is null || seen.Add(e.Hardlink)))
                {
                    pages += (e.Size + MemoryModel.Page - 1) / MemoryModel.Page * MemoryModel.Page;
                }
            }
            return new ArchiveFootprint(rootfs.Count, pages, archiveBytes);
        }
    }

    /// <summary>
    /// The least guest memory an archive boots in, fitted to boots of the Debian kernel under QEMU
    /// at decreasing memory (tools/bench/Measure-BootMemory.ps1; the figures are in
    /// docs/design-notes.md, "Memory preflight"). Two limits, the larger wins:
    /// <list type="bullet">
    /// <item>The rootfs is a tmpfs (no root= on the command line) whose size and inode count the
    /// kernel caps, when it mounts it, at half of the memory then free, and the archive is still
    /// held in memory then. So the memory must be twice the unpacked files' pages (or twice a page
    /// per entry, for the inode cap), plus the archive, plus what the kernel keeps for itself.
    /// Past that the kernel says "Initramfs unpacking failed: write error" and boots from what it
    /// unpacked so far.</item>
    /// <item>Everything must also fit at once: the kernel, the archive, the files and a little per
    /// entry. This binds only for small archives.</item>
    /// </list>
    /// A margin goes on top.
    /// </summary>
    internal static class MemoryModel
    {
        /// <summary>The page size the unpacked files are counted in.</summary>
        public const long Page = 4096;

        /// <summary>Memory the kernel keeps out of what the rootfs cap is half of (fitted: 61.5 to 66.9 MiB over four archives).</summary>
        public const long ReservedBytes = 67L << 20;

        /// <summary>What the kernel needs to reach /init with a nearly empty archive (measured: boots at 88 MiB, not at 81).</summary>
        public const long KernelBytes = 88L << 20;

        /// <summary>Memory per entry besides its pages: an inode and a dentry (not measured binding; see the design notes).</summary>
        public const long BytesPerEntry = 1024;

        /// <summary>The margin over the fitted figure: a tenth, at least 16 MiB.</summary>
        public static long Margin(long bytes) => Math.Max(16L << 20, bytes / 10);

        /// <summary>Headroom Start-InitramfsVM adds to the minimum for the workload itself when no -Memory is given.</summary>
        public const long WorkloadHeadroom = 128L << 20;

        /// <summary>The least memory, in bytes (whole MiB), that <paramref name="footprint"/> boots in with all of it unpacked.</summary>
        public static long Minimum(ArchiveFootprint footprint)
        {
            long capped = 2 * Math.Max(footprint.FilePages, footprint.Entries * Page) + footprint.CompressedBytes + ReservedBytes;
            long atOnce = KernelBytes + footprint.CompressedBytes + footprint.FilePages + footprint.Entries * BytesPerEntry;
            long fitted = Math.Max(capped, atOnce);
            long total = fitted + Margin(fitted);
            return (total + (1L << 20) - 1) >> 20 << 20;
        }

        /// <summary>The memory Start-InitramfsVM gives a guest when none is asked for: the minimum and <see cref="WorkloadHeadroom"/>.</summary>
        public static long Default(ArchiveFootprint footprint) => Minimum(footprint) + WorkloadHeadroom;

        /// <summary>A figure in MiB, for messages.</summary>
        public static string MiB(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{(bytes + (1L << 20) - 1) >> 20} MiB");
    }
}
