using System;
using System.Globalization;
using System.Text;

namespace InitramfsPS.RootFilesystem
{
    /// <summary>The type of a rootfs entry, as the kernel sees it in a cpio archive.</summary>
    public enum EntryType
    {
        /// <summary>A regular file.</summary>
        File,
        /// <summary>A directory.</summary>
        Directory,
        /// <summary>A symbolic link; its target is data, never followed.</summary>
        Symlink,
        /// <summary>A character device node.</summary>
        CharDevice,
        /// <summary>A block device node.</summary>
        BlockDevice,
        /// <summary>A named pipe.</summary>
        Fifo,
        /// <summary>A socket.</summary>
        Socket,
    }

    /// <summary>
    /// Marks the names that share one inode. Entries that hold the same instance are hardlinks
    /// of each other; the group is by identity, so it survives copies of the rootfs.
    /// </summary>
    public sealed class HardlinkGroup
    {
    }

    /// <summary>
    /// One entry of a rootfs: metadata plus, for regular files, a reference to the bytes. Immutable:
    /// changing an entry means putting a new one in its place, which is what makes rootfs copies cheap.
    /// </summary>
    public sealed record RootfsEntry
    {
        /// <summary>Normalised absolute path inside the rootfs.</summary>
        public required string Path { get; init; }

        /// <summary>The entry type.</summary>
        public required EntryType Type { get; init; }

        /// <summary>Permission bits including setuid (04000), setgid (02000) and sticky (01000).</summary>
        public int Mode { get; init; }

        /// <summary>Owner user id.</summary>
        public long Uid { get; init; }

        /// <summary>Owner group id.</summary>
        public long Gid { get; init; }

        /// <summary>Modification time, seconds since the Unix epoch.</summary>
        public long MTime { get; init; }

        /// <summary>Size in bytes of a regular file (0 otherwise).</summary>
        public long Size { get; init; }

        /// <summary>The target of a symlink.</summary>
        public string? LinkTarget { get; init; }

        /// <summary>Major number of a device node.</summary>
        public int DevMajor { get; init; }

        /// <summary>Minor number of a device node.</summary>
        public int DevMinor { get; init; }

        /// <summary>Where a regular file's bytes are.</summary>
        public Content? Content { get; init; }

        /// <summary>Where the entry came from: a layer digest, a host file, or "generated".</summary>
        public string Source { get; init; } = string.Empty;

        /// <summary>Set when this name shares its inode with other names.</summary>
        public HardlinkGroup? Hardlink { get; init; }

        /// <summary>The last path component.</summary>
        public string Name => RootfsPath.Name(Path);

        /// <summary>The directory that holds the entry, for grouping (<c>Group-Object Directory</c>).</summary>
        public string Directory => RootfsPath.Parent(Path);

        /// <summary>Modification time as a date.</summary>
        public DateTimeOffset LastWriteTime => DateTimeOffset.FromUnixTimeSeconds(Math.Clamp(MTime, -62135596800L, 253402300799L));

        /// <summary>Owner as <c>uid:gid</c>.</summary>
        public string Owner => string.Create(CultureInfo.InvariantCulture, $"{Uid}:{Gid}");

        /// <summary>The permission bits in octal, e.g. <c>4755</c>.</summary>
        public string OctalMode => Convert.ToString(Mode & 0xFFF, 8).PadLeft(4, '0');

        /// <summary>The mode as <c>ls -l</c> prints it, e.g. <c>-rwsr-xr-x</c>.</summary>
        public string ModeString
        {
            get
            {
                var sb = new StringBuilder(10);
                sb.Append(Type switch
                {
                    EntryType.Directory => 'd',
                    EntryType.Symlink => 'l',
                    EntryType.CharDevice => 'c',
                    EntryType.BlockDevice => 'b',
                    EntryType.Fifo => 'p',
                    EntryType.Socket => 's',
                    _ => '-',
                });
                AppendTriplet(sb, Mode >> 6, (Mode & 0x800) != 0, 's');
                AppendTriplet(sb, Mode >> 3, (Mode & 0x400) != 0, 's');
                AppendTriplet(sb, Mode, (Mode & 0x200) != 0, 't');
                return sb.ToString();
            }
        }

        /// <summary>True for a regular file with any execute bit.</summary>
        public bool IsExecutable => Type == EntryType.File && (Mode & 0x49) != 0;

        private static void AppendTriplet(StringBuilder sb, int bits, bool special, char specialChar)
        {
            sb.Append((bits & 4) != 0 ? 'r' : '-');
            sb.Append((bits & 2) != 0 ? 'w' : '-');
            bool x = (bits & 1) != 0;
            sb.Append(special ? (x ? specialChar : char.ToUpperInvariant(specialChar)) : (x ? 'x' : '-'));
        }

        /// <summary>Like one line of <c>ls -l</c>.</summary>
        public override string ToString()
        {
            string tail = Type switch
            {
                EntryType.Symlink => " -> " + LinkTarget,
                EntryType.CharDevice or EntryType.BlockDevice => string.Create(CultureInfo.InvariantCulture, $" ({DevMajor},{DevMinor})"),
                _ => string.Empty,
            };
            return string.Create(CultureInfo.InvariantCulture, $"{ModeString} {Uid}:{Gid} {Size,10} {RootfsPath.Printable(Path)}{RootfsPath.Printable(tail)}");
        }
    }
}
