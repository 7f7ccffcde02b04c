using System;
using System.IO;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace InitramfsPS.IO
{
    /// <summary>A host path names a FIFO, socket or terminal where a file to read by position is expected.</summary>
    public sealed class NotAFileException : IOException
    {
        /// <summary>Names the path.</summary>
        public NotAFileException(string path)
            : base($"'{path}' is not a regular file (a FIFO, socket or terminal).")
        {
            FilePath = path;
        }

        /// <summary>The path.</summary>
        public string FilePath { get; }
    }

    /// <summary>
    /// Opens host files the module reads by position (archives, image layouts) without ever
    /// blocking: opening a FIFO for reading waits for a writer, forever if none comes, and its
    /// bytes could not be read a second time anyway.
    /// </summary>
    internal static partial class HostFile
    {
        // The same values on every Linux architecture .NET runs on (x64, arm64, arm, s390x, ppc64le, riscv64, loongarch64).
        private const int ORdOnly = 0;
        private const int ONonBlock = 0x800;
        private const int OCloExec = 0x80000;
        private const int SeekCur = 1;

        /// <summary>
        /// Opens <paramref name="path"/> for reading. On Linux it is opened with O_NONBLOCK, so a FIFO
        /// does not block the open, and refused (<see cref="NotAFileException"/>) unless it can seek.
        /// Errors are the exceptions File.OpenHandle throws (FileNotFoundException,
        /// UnauthorizedAccessException, PathTooLongException, IOException).
        /// </summary>
        public static SafeFileHandle OpenForReading(string path)
        {
            if (!OperatingSystem.IsLinux())
            {
                return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.None);
            }
            int fd = Open(path, ORdOnly | ONonBlock | OCloExec);
            if (fd < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                string message = $"{Marshal.GetPInvokeErrorMessage(errno)}: '{path}'";
                throw errno switch
                {
                    2 or 20 => new FileNotFoundException(message, path), // ENOENT, ENOTDIR
                    1 or 13 or 21 => new UnauthorizedAccessException(message), // EPERM, EACCES, EISDIR
                    36 => new PathTooLongException(message), // ENAMETOOLONG
                    _ => new IOException(message, errno),
                };
            }
            var handle = new SafeFileHandle(fd, ownsHandle: true);
            if (Seek(fd, 0, SeekCur) < 0)
            {
                handle.Dispose();
                throw new NotAFileException(path);
            }
            return handle;
        }

        /// <summary>A FileStream over <see cref="OpenForReading"/>.</summary>
        public static FileStream OpenStream(string path, int bufferSize) => new(OpenForReading(path), FileAccess.Read, bufferSize);

        [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        private static partial int Open(string path, int flags);

        [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
        private static partial long Seek(int fd, long offset, int whence);
    }
}
