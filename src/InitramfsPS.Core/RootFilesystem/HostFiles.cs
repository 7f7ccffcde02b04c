using System;
using System.Collections.Generic;
using System.IO;
using InitramfsPS.Errors;

namespace InitramfsPS.RootFilesystem
{
    /// <summary>Options for <see cref="HostFiles.Add"/>.</summary>
    public sealed class AddFileOptions
    {
        /// <summary>
        /// Permission bits of added files (directories then get 0755). Null:
        /// files and directories inside an added directory keep their host permission bits (rwx for
        /// owner, group and others; setuid, setgid and sticky are not carried over), and a file named
        /// on its own gets 0755, as the seed tool made injected files executable.
        /// </summary>
        public int? Mode { get; init; }

        /// <summary>Owner uid of added entries.</summary>
        public long Uid { get; init; }

        /// <summary>Owner gid of added entries.</summary>
        public long Gid { get; init; }

        /// <summary>Add directories with everything below them.</summary>
        public bool Recurse { get; init; }
    }

    /// <summary>Puts host files and directories into a rootfs, by reference: the bytes are read at export.</summary>
    internal static class HostFiles
    {
        private const int DirectoryMode = 0x1ED;
        private const int FileMode = 0x1ED;

        /// <summary>
        /// Adds <paramref name="hostPaths"/> at <paramref name="destination"/>. A single file lands at
        /// the destination, or inside it when the destination ends with '/' or is a directory in the
        /// rootfs (as cp does); several files land inside it. A directory (with Recurse) has its
        /// contents put into the destination directory. Host symlinks are added as symlinks, never
        /// followed. Missing parents are created as root-owned 0755 directories.
        /// Returns the rootfs paths written.
        /// </summary>
        public static List<string> Add(Rootfs rootfs, IReadOnlyList<string> hostPaths, string destination, AddFileOptions options)
        {
            // Where the destination really is (/bin/x is /usr/bin/x under merged /usr); as cp, a
            // destination that is a directory or a link to one receives the files inside it, and
            // any other link there is replaced, never written through.
            string dest = rootfs.RealPath(destination, errorIdPrefix: "Destination");
            var followed = rootfs.GetRealEntry(dest, followLast: true);
            if (followed?.Type == EntryType.Directory)
            {
                dest = followed.Path;
            }
            bool intoDirectory = hostPaths.Count > 1 || destination.EndsWith('/') || followed?.Type == EntryType.Directory;
            var written = new List<string>();
            foreach (string hostPath in hostPaths)
            {
                var info = new FileInfo(hostPath);
                bool isDirectory = Directory.Exists(hostPath) && info.LinkTarget is null;
                if (isDirectory)
                {
                    if (!options.Recurse)
                    {
                        throw new InitramfsException("HostDirectoryNeedsRecurse", FailureKind.InvalidArgument,
                            $"'{hostPath}' is a directory; add -Recurse to add it with its contents.", hostPath);
                    }
                    string target = hostPaths.Count > 1 ? RootfsPath.Combine(dest, Path.GetFileName(Path.TrimEndingDirectorySeparator(hostPath))) : dest;
                    AddDirectory(rootfs, new DirectoryInfo(hostPath), target, options, written);
                }
                else if (info.Exists || info.LinkTarget is not null)
                {
                    string target = intoDirectory ? RootfsPath.Combine(dest, info.Name) : dest;
                    if (target == RootfsPath.Root)
                    {
                        throw new InitramfsException("DestinationIsRoot", FailureKind.InvalidArgument, "A file cannot replace the root directory; name a path below it.", destination);
                    }
                    AddOne(rootfs, info, target, options.Mode ?? FileMode, options, written);
                }
                else
                {
                    throw new InitramfsException("HostFileNotFound", FailureKind.NotFound, $"The host file '{hostPath}' does not exist.", hostPath);
                }
            }
            return written;
        }

        private static void AddDirectory(Rootfs rootfs, DirectoryInfo directory, string target, AddFileOptions options, List<string> written)
        {
            // As cp -r into an existing tree: a directory (or a link to one, as /bin under merged
            // /usr) that is already there receives the contents and keeps its own metadata.
            var existing = rootfs.GetRealEntry(target, followLast: true);
            if (existing?.Type == EntryType.Directory)
            {
                target = existing.Path;
            }
            else if (target != RootfsPath.Root)
            {
                Put(rootfs, new RootfsEntry
                {
                    Path = target,
                    Type = EntryType.Directory,
                    // -Mode names file bits (0644 would make a directory untraversable): directories keep 0755 then.
                    Mode = options.Mode is null ? HostPermissions(directory) : DirectoryMode,
                    Uid = options.Uid,
                    Gid = options.Gid,
                    MTime = directory.LastWriteTimeUtc.ToUnixSeconds(),
                    Source = "host:" + directory.FullName,
                }, written);
            }
            FileSystemInfo[] children;
            try
            {
                children = directory.GetFileSystemInfos();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw Unreadable(directory.FullName, ex);
            }
            Array.Sort(children, (a, b) => string.CompareOrdinal(a.Name, b.Name));
            foreach (var child in children)
            {
                if (!RootfsPath.FitsPathMax(System.Text.Encoding.UTF8.GetByteCount(child.FullName)))
                {
                    // The host cannot open it by this path (.NET says DirectoryNotFound), and the
                    // kernel could not unpack a name that long either.
                    throw new InitramfsException("HostPathTooLong", FailureKind.LimitExceeded,
                        $"'{child.FullName[..Math.Min(child.FullName.Length, 200)]}…' is {System.Text.Encoding.UTF8.GetByteCount(child.FullName)} bytes, longer than PATH_MAX ({RootfsPath.PathMax}): the host tree is too deep to add.", directory.FullName);
                }
                string childTarget = RootfsPath.Combine(target, child.Name);
                if (child is DirectoryInfo sub && sub.LinkTarget is null)
                {
                    AddDirectory(rootfs, sub, childTarget, options, written);
                }
                else
                {
                    AddOne(rootfs, new FileInfo(child.FullName), childTarget, options.Mode ?? HostPermissions(child), options, written);
                }
            }
        }

        private static InitramfsException Unreadable(string path, Exception ex) => ex switch
        {
            PathTooLongException => new InitramfsException("HostPathTooLong", FailureKind.LimitExceeded, $"Cannot read '{path}': {ex.Message}", path, ex),
            UnauthorizedAccessException => new InitramfsException("HostAccessDenied", FailureKind.AccessDenied, $"Cannot read '{path}': {ex.Message}", path, ex),
            _ => new InitramfsException("HostFileUnreadable", FailureKind.ReadFailed, $"Cannot read '{path}': {ex.Message}", path, ex),
        };

        /// <summary>The rwx bits of a host file or directory (0755 where the platform has none).</summary>
        private static int HostPermissions(FileSystemInfo info) =>
            OperatingSystem.IsWindows() ? DirectoryMode : (int)info.UnixFileMode & 0x1FF;

        private static void AddOne(Rootfs rootfs, FileInfo info, string target, int mode, AddFileOptions options, List<string> written)
        {
            long mtime = info.LastWriteTimeUtc.ToUnixSeconds();
            RootfsEntry entry;
            if (info.LinkTarget is { } linkTarget)
            {
                entry = new RootfsEntry
                {
                    Path = target,
                    Type = EntryType.Symlink,
                    Mode = 0x1FF,
                    Uid = options.Uid,
                    Gid = options.Gid,
                    MTime = mtime,
                    LinkTarget = linkTarget,
                    Source = "host:" + info.FullName,
                };
            }
            else
            {
                // .NET cannot tell a fifo or device from a file here; their length is 0, so they are
                // added as empty files and never opened (opening a fifo could block the export).
                entry = new RootfsEntry
                {
                    Path = target,
                    Type = EntryType.File,
                    Mode = mode,
                    Uid = options.Uid,
                    Gid = options.Gid,
                    MTime = mtime,
                    Size = info.Length,
                    Content = new HostFileContent(info.FullName, info.Length),
                    Source = "host:" + info.FullName,
                };
            }
            Put(rootfs, entry, written);
        }

        private static void Put(Rootfs rootfs, RootfsEntry entry, List<string> written)
        {
            var parentTemplate = new RootfsEntry { Path = "/", Type = EntryType.Directory, Mode = DirectoryMode, MTime = entry.MTime, Source = "generated" };
            rootfs.Set(entry, parentTemplate);
            written.Add(entry.Path);
        }

        internal static long ToUnixSeconds(this DateTime utc) => new DateTimeOffset(DateTime.SpecifyKind(utc, DateTimeKind.Utc)).ToUnixTimeSeconds();
    }
}
