using System.Linq;
using System.Management.Automation;
using InitramfsPS.RootFilesystem;

namespace InitramfsPS.Commands
{
    /// <summary>Lists entries of a rootfs, as Get-ChildItem lists files.</summary>
    [Cmdlet(VerbsCommon.Get, "InitramfsItem")]
    [OutputType(typeof(RootfsEntry))]
    public sealed class GetInitramfsItemCommand : RootfsCmdlet
    {
        /// <summary>Paths or patterns inside the rootfs; a directory lists its children. Default: the root.</summary>
        [Parameter(Position = 0)]
        [SupportsWildcards]
        [ArgumentCompleter(typeof(RootfsPathCompleter))]
        [ValidateNotNullOrEmpty]
        public string[] Path { get; set; } = { "/" };

        /// <summary>Include everything below the directories named.</summary>
        [Parameter]
        public SwitchParameter Recurse { get; set; }

        /// <summary>Only entries of these types.</summary>
        [Parameter]
        public EntryType[]? Type { get; set; }

        /// <inheritdoc/>
        protected override void ProcessRecord()
        {
            // Expanding a piped image can fail (a corrupt layer): one error record, as every failure.
            Rootfs? rootfs = null;
            if (!Guard(InputObject.BaseObject, () => rootfs = RootfsToRead()) || rootfs is null)
            {
                return;
            }
            foreach (string path in Path)
            {
                Guard(path, () =>
                {
                    var found = Initramfs.GetItems(rootfs, path, Recurse);
                    foreach (var entry in Type is null ? found : found.Where(e => Type.Contains(e.Type)))
                    {
                        WriteObject(entry);
                    }
                });
            }
        }
    }
}
