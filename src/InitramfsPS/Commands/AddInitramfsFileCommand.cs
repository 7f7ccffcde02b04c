using System;
using System.Collections.Generic;
using System.Globalization;
using System.Management.Automation;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Commands
{
    /// <summary>Adds host files or directories to a rootfs and passes the changed rootfs on.</summary>
    [Cmdlet(VerbsCommon.Add, "InitramfsFile", DefaultParameterSetName = PathSet)]
    [OutputType(typeof(Rootfs))]
    public sealed class AddInitramfsFileCommand : RootfsCmdlet
    {
        private const string PathSet = "Path";
        private const string LiteralPathSet = "LiteralPath";

        /// <summary>Host files or directories to add; wildcards allowed.</summary>
        [Parameter(Mandatory = true, Position = 0, ParameterSetName = PathSet)]
        [SupportsWildcards]
        [ValidateNotNullOrEmpty]
        public string[] Path { get; set; } = null!;

        /// <summary>Host files or directories to add, taken literally.</summary>
        [Parameter(Mandatory = true, ParameterSetName = LiteralPathSet)]
        [Alias("PSPath", "LP")]
        [ValidateNotNullOrEmpty]
        public string[] LiteralPath { get; set; } = null!;

        /// <summary>Where the file goes in the rootfs (a directory path ending in '/' puts it inside).</summary>
        [Parameter(Mandatory = true, Position = 1)]
        [ArgumentCompleter(typeof(RootfsPathCompleter))]
        [ValidateNotNullOrEmpty]
        public string Destination { get; set; } = null!;

        /// <summary>
        /// Octal permission bits of the added files, e.g. 0755 or 4755 (directories then get 0755).
        /// Without it a file named on its own gets 0755, and -Recurse keeps the host's bits.
        /// </summary>
        [Parameter]
        [ValidatePattern(@"^[0-7]{3,4}\z")]
        public string Mode { get; set; } = "0755";

        /// <summary>Owner of the added entries as uid:gid.</summary>
        [Parameter]
        [ValidatePattern(@"^\d{1,10}:\d{1,10}\z")]
        public string Owner { get; set; } = "0:0";

        /// <summary>Add directories with everything below them.</summary>
        [Parameter]
        public SwitchParameter Recurse { get; set; }

        /// <inheritdoc/>
        protected override void ProcessRecord()
        {
            Guard(Destination, () =>
            {
                var hostPaths = ResolveHostPaths(ParameterSetName == LiteralPathSet ? null : Path, ParameterSetName == LiteralPathSet ? LiteralPath : null,
                    "HostFileNotFound", "HostPathNotFileSystem", "host file", out bool failed);
                if (failed)
                {
                    // A file that could not be found: the rootfs would lack what was asked, so nothing flows on.
                    return;
                }
                string[] owner = Owner.Split(':');
                var options = new AddFileOptions
                {
                    Mode = MyInvocation.BoundParameters.ContainsKey(nameof(Mode)) ? Convert.ToInt32(Mode, 8) : null,
                    Uid = long.Parse(owner[0], CultureInfo.InvariantCulture),
                    Gid = long.Parse(owner[1], CultureInfo.InvariantCulture),
                    Recurse = Recurse,
                };
                var rootfs = RootfsToChange();
                if (rootfs is null)
                {
                    return;
                }
                foreach (string path in Initramfs.AddFiles(rootfs, hostPaths, Destination, options))
                {
                    WriteVerbose($"Added {path}.");
                }
                WriteObject(rootfs);
            });
        }
    }
}
