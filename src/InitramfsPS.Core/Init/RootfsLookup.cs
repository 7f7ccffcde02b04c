using System;
using System.Text;
using InitramfsPS.Errors;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Init
{
    /// <summary>
    /// Finds programs and reads small text files in a rootfs as the VM will see them: what building
    /// an /init needs, and what the checks of it (Inspection, Boot) ask the same way.
    /// </summary>
    internal static class RootfsLookup
    {
        /// <summary>The PATH a container runtime uses when the image sets none.</summary>
        public const string DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

        /// <summary>
        /// Looks a program up as a shell would: a name with a '/' as it is (relative to /), otherwise
        /// in each PATH directory in turn. Returns the path where it was found and the regular file
        /// it resolves to, or nulls.
        /// </summary>
        public static (string? Path, RootfsEntry? Entry) FindProgram(Rootfs rootfs, string program, string searchPath)
        {
            if (program.Length == 0 || program.Contains('\0', StringComparison.Ordinal))
            {
                return (null, null);
            }
            // Paths are resolved as inside the VM: '..' at the root stays there, symlinks are followed.
            if (program.Contains('/', StringComparison.Ordinal))
            {
                return (RootfsPath.Confine(program), rootfs.Resolve(program));
            }
            foreach (string dir in searchPath.Split(':', StringSplitOptions.RemoveEmptyEntries))
            {
                if (!dir.StartsWith('/'))
                {
                    continue;
                }
                var entry = rootfs.Resolve(dir + "/" + program);
                if (entry is { Type: EntryType.File } && entry.IsExecutable)
                {
                    return (RootfsPath.Confine(dir + "/" + program), entry);
                }
            }
            return (null, null);
        }

        /// <summary>A small text file of the rootfs (configuration files, script heads: at most <paramref name="maxBytes"/> read), or null.</summary>
        public static string? ReadText(Rootfs rootfs, string path, int maxBytes)
        {
            var entry = rootfs.Resolve(path);
            if (entry?.Type != EntryType.File || entry.Content is null)
            {
                return null;
            }
            try
            {
                using var reader = new ContentReader();
                return Encoding.UTF8.GetString(reader.ReadPrefix(entry.Content, maxBytes));
            }
            catch (System.IO.IOException)
            {
                return null;
            }
            catch (InitramfsException ex) when (!ex.ContentMismatch)
            {
                return null;
            }
        }
    }
}
