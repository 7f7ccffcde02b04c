using System;
using System.IO;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace InitramfsPS.IO
{
    /// <summary>The path names something that is not a regular file: a FIFO, a device, a socket or a directory.</summary>
    internal sealed class NotRegularFileException : IOException
    {
        /// <summary>Creates the exception for <paramref name="path"/>, which is <paramref name="kind"/> ("a FIFO", ...).</summary>
        public NotRegularFileException(string path, string kind)
            : base($"'{path}' is {kind}, not a regular file.")
        {
            Path = path;
            Kind = kind;
        }

        /// <summary>The path.</summary>
        public string Path { get; }

        /// <summary>What it is instead: "a FIFO", "a character device", "a block device", "a socket", "a directory".</summary>
        public string Kind { get; }
    }

    /// <summary>
    /// Opens files that must be regular files (archives, blobs, layer tars, host files) without ever
    /// blocking on something else. A plain open(2) of a FIFO waits for a writer, forever; so the file
    /// is opened with O_NONBLOCK, its type is checked on the open descriptor (statx), and only a
    /// regular file is handed on (with O_NONBLOCK cleared). Checking the descriptor, not the path,
    /// leaves no gap in which the file could be swapped. On other systems than Linux this is a plain open.
    /// </summary>
    internal static partial class RegularFile
    {
        private const int ORdOnly = 0;
        private const int ONonBlock = 0x800;
        private const int OCloExec = 0x80000;
        private const int FGetFl = 3;
        private const int FSetFl = 4;
        private const int AtEmptyPath = 0x1000;
        private const uint StatxType = 0x1;
        private const int SIfMt = 0xF000;
        private const int SIfReg = 0x8000;
        private const int Enoent = 2;
        private const int Eperm = 1;
        private const int Enotdir = 20;
        private const int Eacces = 13;
        private const int Enosys = 38;

        /// <summary>
        /// Opens <paramref name="path"/> for reading. Throws <see cref="NotRegularFileException"/> when it
        /// is not a regular file, and the exceptions of <see cref="File.OpenHandle"/> when it cannot be
        /// opened (<see cref="FileNotFoundException"/>, <see cref="UnauthorizedAccessException"/>, ...).
        /// </summary>
        public static SafeFileHandle OpenRead(string path, FileOptions options = FileOptions.SequentialScan)
        {
            if (!OperatingSystem.IsLinux())
            {
                if (Directory.Exists(path))
                {
                    throw new NotRegularFileException(path, "a directory");
                }
                return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, options);
            }
            int fd = SysOpen(path, ORdOnly | ONonBlock | OCloExec, 0);
            if (fd < 0)
            {
                throw OpenError(Marshal.GetLastPInvokeError(), path);
            }
            var handle = new SafeFileHandle((IntPtr)fd, ownsHandle: true);
            try
            {
                string? kind = KindOf(fd);
                if (kind is not null)
                {
                    throw new NotRegularFileException(path, kind);
                }
                int flags = SysFcntl(fd, FGetFl, 0);
                if (flags < 0 || SysFcntl(fd, FSetFl, flags & ~ONonBlock) < 0)
                {
                    throw OpenError(Marshal.GetLastPInvokeError(), path);
                }
                return handle;
            }
            catch
            {
                handle.Dispose();
                throw;
            }
        }

        /// <summary>A stream over <see cref="OpenRead"/>'s handle.</summary>
        public static FileStream OpenStream(string path, int bufferSize = 1 << 16, FileOptions options = FileOptions.SequentialScan)
        {
            var handle = OpenRead(path, options);
            try
            {
                return new FileStream(handle, FileAccess.Read, bufferSize);
            }
            catch
            {
                handle.Dispose();
                throw;
            }
        }

        /// <summary>
        /// The canonical absolute path of <paramref name="path"/>, every symlink resolved (realpath(3));
        /// null when it, or a directory on the way, does not exist. On other systems than Linux, the full path.
        /// </summary>
        public static string? RealPath(string path)
        {
            if (!OperatingSystem.IsLinux())
            {
                return File.Exists(path) || Directory.Exists(path) ? System.IO.Path.GetFullPath(path) : null;
            }
            IntPtr resolved = SysRealPath(path, IntPtr.Zero);
            if (resolved == IntPtr.Zero)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno is Enoent or Enotdir)
                {
                    return null;
                }
                throw OpenError(errno, path);
            }
            try
            {
                return Marshal.PtrToStringUTF8(resolved);
            }
            finally
            {
                SysFree(resolved);
            }
        }

        /// <summary>Whether <paramref name="path"/> (canonical) is <paramref name="directory"/> (canonical) or lies below it.</summary>
        public static bool IsWithin(string path, string directory) =>
            path == directory || path.StartsWith(directory.EndsWith('/') ? directory : directory + "/", StringComparison.Ordinal);

        /// <summary>Null for a regular file, else what the descriptor is ("a FIFO", ...).</summary>
        private static unsafe string? KindOf(int fd)
        {
            // struct statx is the same on every architecture: stx_mask at 0, stx_mode (u16) at 28.
            byte* buffer = stackalloc byte[256];
            byte empty = 0;
            int result;
            try
            {
                result = SysStatx(fd, &empty, AtEmptyPath, StatxType, buffer);
            }
            catch (EntryPointNotFoundException)
            {
                // A C library older than glibc 2.28: as without statx below.
                return null;
            }
            if (result != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno is Enosys or Eperm)
                {
                    // No statx (an old kernel, a seccomp filter): the descriptor stays non-blocking,
                    // so a FIFO still cannot block a read; it only goes without its clear error.
                    return null;
                }
                throw new IOException($"statx failed: {Marshal.GetPInvokeErrorMessage(errno)}");
            }
            int mode = *(ushort*)(buffer + 28) & SIfMt;
            return mode switch
            {
                SIfReg => null,
                0x1000 => "a FIFO",
                0x2000 => "a character device",
                0x4000 => "a directory",
                0x6000 => "a block device",
                0xC000 => "a socket",
                _ => "not a regular file",
            };
        }

        private static Exception OpenError(int errno, string path) => errno switch
        {
            Enoent => new FileNotFoundException($"Could not find file '{path}'.", path),
            Enotdir => new DirectoryNotFoundException($"Could not find a part of the path '{path}'."),
            Eacces or Eperm => new UnauthorizedAccessException($"Access to the path '{path}' is denied."),
            _ => new IOException($"Cannot open '{path}': {Marshal.GetPInvokeErrorMessage(errno)}"),
        };

        [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        private static partial int SysOpen(string path, int flags, int mode);

        [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        private static partial int SysFcntl(int fd, int command, int argument);

        [LibraryImport("libc", EntryPoint = "statx", SetLastError = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        private static unsafe partial int SysStatx(int directoryFd, byte* path, int flags, uint mask, byte* buffer);

        [LibraryImport("libc", EntryPoint = "realpath", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        private static partial IntPtr SysRealPath(string path, IntPtr resolved);

        [LibraryImport("libc", EntryPoint = "free")]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        private static partial void SysFree(IntPtr pointer);
    }
}
