using System;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using InitramfsPS.Errors;

namespace InitramfsPS.Boot
{
    /// <summary>Finds the kernel to boot.</summary>
    internal static class Kernels
    {
        /// <summary>Where distributions install their kernels.</summary>
        public const string BootDirectory = "/boot";

        /// <summary>
        /// The newest readable <c>/boot/vmlinuz-*</c>, by version (6.10 after 6.9), or KernelNotFound
        /// naming what was looked at: a kernel readable only by root is skipped, since QEMU run by
        /// this user could not read it either.
        /// </summary>
        public static string FindDefault()
        {
            var candidates = Directory.Exists(BootDirectory)
                ? new DirectoryInfo(BootDirectory).GetFiles("vmlinuz-*").OrderBy(f => VersionKey(f.Name), StringComparer.Ordinal).ToList()
                : new System.Collections.Generic.List<FileInfo>();
            foreach (var file in Enumerable.Reverse(candidates))
            {
                if (Readable(file.FullName))
                {
                    return file.FullName;
                }
            }
            throw new InitramfsException("KernelNotFound", FailureKind.NotFound,
                candidates.Count == 0
                    ? $"No kernel to boot: {BootDirectory} has no vmlinuz-* file. Give one with -Kernel (Debian: apt-get install linux-image-amd64)."
                    : $"No kernel to boot: {string.Join(", ", candidates.Select(c => c.Name))} in {BootDirectory} cannot be read by this user. Give one with -Kernel, or make it readable.",
                BootDirectory);
        }

        /// <summary><paramref name="path"/> as a full path, or KernelNotFound when it is not a readable file.</summary>
        public static string Check(string path)
        {
            string full = Path.GetFullPath(path);
            if (!File.Exists(full) || !Readable(full))
            {
                throw new InitramfsException("KernelNotFound", FailureKind.NotFound,
                    File.Exists(full) ? $"The kernel '{full}' cannot be read by this user, or is not a regular file." : $"The kernel '{full}' does not exist.", full);
            }
            return full;
        }

        private static bool Readable(string path)
        {
            try
            {
                // Not a plain open: a FIFO named like a kernel would block it forever.
                using var handle = IO.RegularFile.OpenRead(path, FileOptions.None);
                return true;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return false;
            }
        }

        /// <summary>A sort key in which runs of digits compare by value: vmlinuz-6.10.0 after vmlinuz-6.9.0.</summary>
        private static string VersionKey(string name) => Regex.Replace(name, @"\d+", m => m.Value.PadLeft(10, '0'), RegexOptions.CultureInvariant);
    }
}
