using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Management.Automation;
using InitramfsPS.Errors;
using InitramfsPS.IO;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Commands
{
    /// <summary>Removes entries from a rootfs (a copy of it) and passes the trimmed rootfs on.</summary>
    [Cmdlet(VerbsCommon.Remove, "InitramfsItem", SupportsShouldProcess = true, DefaultParameterSetName = PathSet)]
    [OutputType(typeof(Rootfs))]
    public sealed class RemoveInitramfsItemCommand : RootfsCmdlet
    {
        private const string PathSet = "Path";
        private const string PresetSet = "Preset";
        private static readonly string[] InformationTags = { "InitramfsPS", "Removed" };

        /// <summary>Paths or patterns inside the rootfs to remove.</summary>
        [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet)]
        [Parameter(Position = 0, ParameterSetName = PresetSet)]
        [SupportsWildcards]
        [ArgumentCompleter(typeof(RootfsPathCompleter))]
        [ValidateNotNullOrEmpty]
        public string[]? Path { get; set; }

        /// <summary>Remove directories with everything below them.</summary>
        [Parameter]
        public SwitchParameter Recurse { get; set; }

        /// <summary>Usual trims: Docs, ManPages, Locales, PackageCaches, PythonCache.</summary>
        [Parameter(Mandatory = true, ParameterSetName = PresetSet)]
        [ValidateSet("Docs", "ManPages", "Locales", "PackageCaches", "PythonCache", IgnoreCase = true)]
        public string[]? Preset { get; set; }

        /// <inheritdoc/>
        protected override void ProcessRecord()
        {
            // Expanding a piped image can fail (a corrupt layer): one error record, as every failure.
            Rootfs? rootfs = null;
            if (!Guard(InputObject.BaseObject, () => rootfs = RootfsToChange()) || rootfs is null)
            {
                return;
            }
            bool declined = false;
            int entries = 0;
            long bytes = 0;
            var what = new List<string>();
            // What is gone already, by reference: a pattern like /d/** names a directory and all
            // below it, and the rest must cost O(1) each, not a lookup of its (long) path.
            var gone = new HashSet<RootfsEntry>(ReferenceEqualityComparer.Instance);
            void RemoveTop(RootfsEntry top, string reason)
            {
                if (gone.Contains(top) || rootfs.GetEntry(top.Path) is null)
                {
                    return;
                }
                var below = top.Type == EntryType.Directory ? rootfs.GetEntriesBelow(top.Path).ToList() : new List<RootfsEntry>();
                long size = top.Size + below.Sum(e => e.Type == EntryType.File ? e.Size : 0);
                string detail = below.Count == 0
                    ? $"{top.Path} ({Units.Bytes(size)})"
                    : string.Create(CultureInfo.InvariantCulture, $"{top.Path} and the {below.Count} entries below it ({Units.Bytes(size)})");
                if (!ShouldProcess(detail, "Remove from the rootfs" + reason))
                {
                    declined = true;
                    return;
                }
                var removed = rootfs.Remove(top.Path);
                gone.UnionWith(removed);
                entries += removed.Count;
                bytes += size;
                WriteVerbose("Removed " + detail + ".");
            }

            foreach (string path in Path ?? System.Array.Empty<string>())
            {
                // As Remove-Item: a path that fails is one error, and the others are still removed.
                Guard(path, () =>
                {
                    var found = RootfsQuery.Find(rootfs, path, recurse: false, listDirectory: false);
                    if (found is null || (found.Count == 0 && !RootfsGlob.HasWildcards(path)))
                    {
                        throw new InitramfsException("ItemNotFound", FailureKind.NotFound, $"'{RootfsPath.Printable(path)}' does not exist in the rootfs.", path);
                    }
                    foreach (var entry in found)
                    {
                        if (entry.Path == RootfsPath.Root)
                        {
                            throw new InitramfsException("RootNotRemovable", FailureKind.InvalidArgument, "The root of a rootfs cannot be removed.", path);
                        }
                        if (entry.Type == EntryType.Directory && !Recurse && rootfs.GetChildren(entry.Path).Any())
                        {
                            throw new InitramfsException("DirectoryNotEmpty", FailureKind.InvalidArgument,
                                $"'{entry.Path}' is a directory with entries in it; add -Recurse to remove it with them.", entry.Path);
                        }
                        RemoveTop(entry, string.Empty);
                    }
                    what.Add(path);
                });
            }
            foreach (string name in Preset ?? System.Array.Empty<string>())
            {
                var preset = TrimPresets.Get(name);
                foreach (var top in TrimPresets.Select(rootfs, preset))
                {
                    RemoveTop(top, $" (preset {preset.Name})");
                }
                what.Add("preset " + preset.Name);
            }
            if (declined)
            {
                // -WhatIf or a "no" at -Confirm: the rootfs was not trimmed as asked, so nothing flows
                // on to be exported by mistake. A path that failed wrote its error (which stops the
                // pipeline under -ErrorAction Stop); the copy trimmed of the others flows on.
                return;
            }
            string summary = string.Create(CultureInfo.InvariantCulture, $"removed {entries} entries ({Units.Bytes(bytes)}) for {string.Join(", ", what)}");
            rootfs.Changes.Add(summary);
            WriteInformation(new InformationRecord(summary, MyInvocation.InvocationName), InformationTags);
            WriteVerbose(char.ToUpperInvariant(summary[0]) + summary[1..] + ".");
            WriteObject(rootfs);
        }
    }
}
