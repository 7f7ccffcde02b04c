# Cross-checks of Export-Initramfs against independent tools:
#  - the tree `umoci unpack` makes from a three-layer image (whiteouts, an opaque directory, a
#    hardlink across layers, devices, a fifo, setuid/setgid/sticky modes, non-root owners) must
#    equal, entry by entry, the tree GNU cpio extracts from our archive (both as root);
#  - our strict reader (Get-CpioListing) and GNU `cpio -itvn` / `bsdtar --numeric-owner -tvf`
#    must list the same entries with the same modes, owners, sizes, devices and link targets;
#  - two exports of the same input are byte-identical, gzip and zstd.
# Needs root (device nodes, owners; skipped otherwise), umoci, GNU cpio and bsdtar.

BeforeDiscovery {
    # Device nodes and owners need root (as in TestHelpers.Tests.ps1, the CI runs as root). A
    # missing tool is not a reason to skip: the tests then fail with the tool's error.
    $script:IsRoot = ((& id -u) -eq '0')
}

Describe 'Exported archives against umoci, GNU cpio and bsdtar' -Tag CrossCheck -Skip:(-not $IsRoot) {
    BeforeAll {
        $modulePath = if ($env:INITRAMFSPS_MODULE) { $env:INITRAMFSPS_MODULE } else { "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1" }
        Import-Module $modulePath -Force
        Import-Module $PSScriptRoot/TestHelpers.psm1 -Force

        $script:Work = New-TestDirectory -Prefix 'initramfsps-crosscheck'
        $script:OldCache = $env:INITRAMFSPS_CACHE
        $env:INITRAMFSPS_CACHE = New-TestDirectory -Parent $Work -Prefix 'cache'

        # Runs a tool in the C locale and UTC (fixed date and number formats); throws on a non-zero
        # exit code; returns stdout split into lines.
        function Invoke-Tool([string] $File, [string[]] $Arguments, [string] $WorkingDirectory) {
            $psi = [Diagnostics.ProcessStartInfo]::new($File)
            foreach ($a in $Arguments) { $psi.ArgumentList.Add($a) }
            $psi.Environment['LC_ALL'] = 'C'
            $psi.Environment['TZ'] = 'UTC'
            if ($WorkingDirectory) { $psi.WorkingDirectory = $WorkingDirectory }
            $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true; $psi.RedirectStandardInput = $true
            $psi.UseShellExecute = $false
            $p = [Diagnostics.Process]::Start($psi)
            $p.StandardInput.Close()
            $outTask = $p.StandardOutput.ReadToEndAsync(); $errTask = $p.StandardError.ReadToEndAsync()
            $p.WaitForExit()
            $out = $outTask.GetAwaiter().GetResult(); $err = $errTask.GetAwaiter().GetResult()
            if ($p.ExitCode -ne 0) { throw "'$File $($Arguments -join ' ')' failed with exit code $($p.ExitCode): $err" }
            , @($out.TrimEnd("`n") -split "`n" | Where-Object { $_ -ne '' })
        }

        # ls-style mode string ('-rwsr-xr-x', 'drwxrwxrwt', 'crw-rw-rw-') from the cpio mode field.
        function ConvertTo-ModeString([int] $Mode) {
            $typeChar = @{ 0x8000 = '-'; 0x4000 = 'd'; 0xA000 = 'l'; 0x2000 = 'c'; 0x6000 = 'b'; 0x1000 = 'p'; 0xC000 = 's' }[$Mode -band 0xF000]
            if (-not $typeChar) { $typeChar = '?' }
            $c = [char[]]('rwxrwxrwx')
            for ($i = 0; $i -lt 9; $i++) { if (-not ($Mode -band (1 -shl (8 - $i)))) { $c[$i] = '-' } }
            if ($Mode -band 0x800) { $c[2] = if ($c[2] -eq 'x') { 's' } else { 'S' } }
            if ($Mode -band 0x400) { $c[5] = if ($c[5] -eq 'x') { 's' } else { 'S' } }
            if ($Mode -band 0x200) { $c[8] = if ($c[8] -eq 'x') { 't' } else { 'T' } }
            $typeChar + [string]::new($c)
        }

        # Parses `ls -l`-like listings of GNU `cpio -itvn` and `bsdtar --numeric-owner -tvf`:
        #   GNU cpio: "brw-rw----   1 0        6          7,   0 Nov 14  2023 dev/loop0"
        #   bsdtar:   "lrwxrwxrwx  1 0      0           7 Nov 14  2023 bin/sh -> busybox"
        #             "-rw-r--r--  2 0      0           0 Jul 22  2023 etc/passwd- link to etc/passwd"
        # Names in the test image have no spaces, ' -> ' or ' link to ', so the rest of the line
        # splits unambiguously. Throws on a line it cannot read (nothing is silently skipped).
        function ConvertFrom-LsListing([string[]] $Lines, [string] $Tool) {
            foreach ($l in $Lines) {
                if ($l -notmatch '^(?<mode>[-dlcbpsh][-rwxsStT]{9})\s+(?<nlink>\d+)\s+(?<uid>\d+)\s+(?<gid>\d+)\s+(?:(?<maj>\d+),\s*(?<min>\d+)|(?<size>\d+))\s+(?<mon>[A-Z][a-z]{2})\s+(?<day>\d{1,2})\s+(?<yt>\d{4}|\d{1,2}:\d{2})\s(?<rest>.+)$') {
                    throw "Cannot parse this line of ${Tool}: '$l'"
                }
                $m = $Matches
                $name = $m.rest; $link = $null; $hard = $null
                if ($m.mode[0] -eq 'l') {
                    $i = $name.IndexOf(' -> ')
                    if ($i -lt 0) { throw "${Tool}: symlink line without ' -> ': '$l'" }
                    $link = $name.Substring($i + 4); $name = $name.Substring(0, $i)
                }
                elseif ($name -match '^(?<n>.+) link to (?<t>.+)$') { $name = $Matches.n; $hard = $Matches.t }
                [pscustomobject]@{
                    Name       = $name
                    Mode       = $m.mode
                    NLink      = [long]$m.nlink
                    Uid        = [long]$m.uid
                    Gid        = [long]$m.gid
                    Size       = if ($m.ContainsKey('size')) { [long]$m['size'] } else { 0L }
                    DevMajor   = if ($m.ContainsKey('maj')) { [long]$m['maj'] } else { $null }
                    DevMinor   = if ($m.ContainsKey('min')) { [long]$m['min'] } else { $null }
                    LinkTarget = $link
                    HardlinkTo = $hard
                }
            }
        }

        # "name: field a=x b=y" lines for every difference between two keyed object sets.
        function Compare-Listing($Reference, $Difference, [string] $ReferenceName, [string] $DifferenceName, [string[]] $Property, [scriptblock] $Skip) {
            $ref = [ordered]@{}; foreach ($e in $Reference) { $ref[$e.Name] = $e }
            $dif = [ordered]@{}; foreach ($e in $Difference) { $dif[$e.Name] = $e }
            $out = [Collections.Generic.List[string]]::new()
            foreach ($n in $ref.Keys) { if (-not $dif.Contains($n)) { $out.Add("${n}: only in $ReferenceName") } }
            foreach ($n in $dif.Keys) { if (-not $ref.Contains($n)) { $out.Add("${n}: only in $DifferenceName") } }
            foreach ($n in $ref.Keys) {
                if (-not $dif.Contains($n)) { continue }
                foreach ($p in $Property) {
                    if ($Skip -and (& $Skip $ref[$n] $p)) { continue }
                    $a = $ref[$n].$p; $b = $dif[$n].$p
                    if ($p -eq 'Perm') { $a = [Convert]::ToString([int]$a, 8); $b = [Convert]::ToString([int]$b, 8) }   # octal in messages
                    if ("$a" -cne "$b") { $out.Add("${n}: $p $ReferenceName=<$a> $DifferenceName=<$b>") }
                }
            }
            , $out.ToArray()
        }

        function O([string] $Octal) { [Convert]::ToInt32($Octal, 8) }

        # --- the test image: three gzip layers ---
        $lower = New-TestTar -Entry @(
            @{ Name = 'bin/'; Type = 'Dir'; Mode = '0755' }
            @{ Name = 'bin/busybox'; Mode = '0755'; Data = "#!stand-in for busybox`n" }
            @{ Name = 'bin/sh'; Type = 'Symlink'; LinkName = 'busybox' }                       # relative
            @{ Name = 'etc/'; Type = 'Dir'; Mode = '0755' }
            @{ Name = 'etc/passwd'; Mode = '0644'; MTime = 1690000000; Data = "root:x:0:0:root:/root:/bin/sh`nuser:x:1000:1000::/home/user:/bin/sh`n" }
            @{ Name = 'etc/hostname'; Mode = '0644'; Data = "lower`n" }                         # whited out above
            @{ Name = 'home/'; Type = 'Dir'; Mode = '0755' }
            @{ Name = 'home/user/'; Type = 'Dir'; Mode = '0700'; Uid = 1000; Gid = 1000 }
            @{ Name = 'home/user/notes.txt'; Mode = '0600'; Uid = 1000; Gid = 1000; Data = "private notes`n" }
            @{ Name = 'srv/'; Type = 'Dir'; Mode = '0755' }
            @{ Name = 'srv/data/'; Type = 'Dir'; Mode = '0750' }                                # made opaque above
            @{ Name = 'srv/data/old.txt'; Data = "old`n" }
            @{ Name = 'srv/data/olddir/'; Type = 'Dir' }
            @{ Name = 'srv/data/olddir/deep.txt'; Data = "deep`n" }
            @{ Name = 'tmp/'; Type = 'Dir'; Mode = '1777' }
            @{ Name = 'usr/'; Type = 'Dir'; Mode = '0755' }
            @{ Name = 'usr/bin/'; Type = 'Dir'; Mode = '0755' }
            @{ Name = 'usr/bin/su'; Mode = '4755'; Data = "setuid stand-in`n" }
            @{ Name = 'usr/bin/wall'; Mode = '2755'; Gid = 5; Data = "setgid stand-in`n" }
            @{ Name = 'dev/'; Type = 'Dir'; Mode = '0755' }
            @{ Name = 'dev/null'; Type = 'CharDevice'; DevMajor = 1; DevMinor = 3; Mode = '0666' }
            @{ Name = 'dev/loop0'; Type = 'BlockDevice'; DevMajor = 7; DevMinor = 0; Mode = '0660'; Gid = 6 }
            @{ Name = 'run/'; Type = 'Dir'; Mode = '0755' }
            @{ Name = 'run/initctl'; Type = 'Fifo'; Mode = '0600'; MTime = 1680000000 }
            @{ Name = 'lib/'; Type = 'Dir'; Mode = '0755' }
            @{ Name = 'lib/libfoo.so.1'; Mode = '0755'; Data = [byte[]](0..255) }
        )
        $middle = New-TestTar -Entry @(
            @{ Name = 'etc/'; Type = 'Dir'; Mode = '0755' }
            @{ Name = 'etc/.wh.hostname' }                                                      # whiteout of a lower file
            @{ Name = 'etc/passwd-'; Type = 'Hardlink'; LinkName = 'etc/passwd' }              # hardlink to a lower file
            @{ Name = 'etc/motd'; Data = "hello from the middle layer`n" }
            @{ Name = 'srv/data/'; Type = 'Dir'; Mode = '0755' }
            @{ Name = 'srv/data/.wh..wh..opq' }                                                 # opaque: old content gone
            @{ Name = 'srv/data/new.txt'; Data = "new`n"; Uid = 1000; Gid = 1000 }
            @{ Name = 'lib/libfoo.so'; Type = 'Symlink'; LinkName = 'libfoo.so.1' }            # relative
            @{ Name = 'usr/bin/sh'; Type = 'Symlink'; LinkName = '/bin/busybox' }              # absolute
        )
        $upper = New-TestTar -Entry @(
            @{ Name = 'init'; Mode = '0755'; Data = "#!/bin/sh`nexec /bin/sh`n" }
        )
        $script:Layers = @($lower, $middle, $upper)
        $script:Layout = New-TestOciLayout -Path (Join-Path $Work 'layout') -Layer $Layers -Compression gzip -Tag 'cross'
        $script:ImageRef = "oci:$($Layout.Path):cross"

        $script:Archive = Join-Path $Work 'cross.cpio'
        $script:Report = Get-OciImage $ImageRef | Export-Initramfs $Archive -NoDefaultEntries
        $script:Listing = @(Get-CpioListing $Archive)
    }

    AfterAll {
        $env:INITRAMFSPS_CACHE = $OldCache
        if ($Work) { Remove-Item -LiteralPath $Work -Recurse -Force -ErrorAction SilentlyContinue }
    }

    It 'wrote an uncompressed archive with nothing added (-NoDefaultEntries)' {
        $Report.Compression | Should -Be 'None'
        @($Report.AddedEntries).Count | Should -Be 0
        $Listing.Name | Should -Not -Contain 'dev/console'
        $Report.EntryCount | Should -Be $Listing.Count
    }

    Context 'umoci unpack vs our archive extracted by GNU cpio' {
        BeforeAll {
            $script:Bundle = Join-Path $Work 'bundle'
            $null = Invoke-Tool umoci @('unpack', '--image', "$($Layout.Path):cross", $Bundle)
            $script:RefRoot = Join-Path $Bundle 'rootfs'
            $script:OurRoot = Join-Path $Work 'extracted'
            # GNU cpio -idm --no-absolute-filenames, run in that directory (keeps owners as root)
            Expand-TestCpioArchive -Path $Archive -Destination $OurRoot
            # Get-TreeListing lists below the root only (find -mindepth 1): umoci makes the
            # rootfs directory itself (mode 0755, mtime 0) whatever the image says, and our archive's
            # "." entry lands on the extraction directory, so the roots are not compared.
            $script:RefTree = @(Get-TreeListing $RefRoot)
            $script:OurTree = @(Get-TreeListing $OurRoot)

            # The names that share an inode with each entry (hardlinks), as a comparable field.
            function Add-LinkGroup($Tree) {
                $byIno = $Tree | Group-Object Ino -AsHashTable -AsString
                foreach ($e in $Tree) {
                    $names = @($byIno["$($e.Ino)"] | ForEach-Object Name | Sort-Object -CaseSensitive)
                    $e | Add-Member -NotePropertyName LinkGroup -NotePropertyValue ($names -join ',') -Force
                }
            }
            Add-LinkGroup $RefTree
            Add-LinkGroup $OurTree
        }

        It 'the umoci tree has the features the image is meant to exercise (the comparison is not vacuous)' {
            $ref = @{}; foreach ($e in $RefTree) { $ref[$e.Name] = $e }
            $ref.Keys | Should -Not -Contain 'etc/hostname'              # whiteout
            $ref.Keys | Should -Not -Contain 'srv/data/old.txt'          # opaque directory
            $ref.Keys | Should -Not -Contain 'srv/data/olddir'
            $ref['srv/data/new.txt'].Uid | Should -Be 1000
            $ref['usr/bin/su'].Perm | Should -Be (O '4755')
            $ref['tmp'].Perm | Should -Be (O '1777')
            $ref['home/user'].Perm | Should -Be (O '0700')
            "$($ref['dev/null'].Type) $($ref['dev/null'].RDevMajor):$($ref['dev/null'].RDevMinor)" | Should -Be 'CharDevice 1:3'
            "$($ref['dev/loop0'].Type) $($ref['dev/loop0'].RDevMajor):$($ref['dev/loop0'].RDevMinor)" | Should -Be 'BlockDevice 7:0'
            $ref['run/initctl'].Type | Should -Be 'Fifo'
            $ref['usr/bin/sh'].LinkTarget | Should -Be '/bin/busybox'
            $ref['etc/passwd-'].NLink | Should -Be 2
        }

        It 'has the same entries with the same type, mode, owner, size, link target, device numbers, content, link count, hardlinks and (non-directory, non-symlink) mtime' {
            # Compared: Type, Perm (incl. setuid/setgid/sticky), Uid, Gid, Size (files), LinkTarget,
            # RDevMajor/RDevMinor, DataSha256, NLink (hardlinks; for directories 2 + subdirectories),
            # LinkGroup (which names share an inode), MTime.
            # Not compared: Ino (differs per extraction by nature); MTime of directories (GNU cpio
            # -m sets a directory's time when it creates it, then creating its children bumps it)
            # and of symlinks (GNU cpio does not set symlink times; umoci does).
            $props = 'Type', 'Perm', 'Uid', 'Gid', 'Size', 'LinkTarget', 'RDevMajor', 'RDevMinor', 'DataSha256', 'NLink', 'LinkGroup', 'MTime'
            $skip = { param($e, $p) $p -eq 'MTime' -and $e.Type -in 'Dir', 'Symlink' }
            $diff = Compare-Listing $RefTree $OurTree 'umoci' 'ours' $props $skip
            # (the differences are repeated in -Because: Pester cuts a long string short in its message)
            $diff -join "`n" | Should -Be '' -Because ("umoci's tree and the extracted archive must match entry by entry; differences:`n" + ($diff -join "`n") + "`n")
            $OurTree.Count | Should -Be $RefTree.Count
        }

        It 'keeps the cross-layer hardlink: one inode with NLink 2 in the archive, one inode on disk in the umoci tree' {
            $a = @($Listing | Where-Object Name -EQ 'etc/passwd')
            $b = @($Listing | Where-Object Name -EQ 'etc/passwd-')
            $a.Count | Should -Be 1; $b.Count | Should -Be 1
            $b[0].Ino | Should -Be $a[0].Ino
            $a[0].NLink | Should -Be 2
            $b[0].NLink | Should -Be 2
            # no other entry claims that inode number (the kernel links by inode number)
            @($Listing | Where-Object Ino -EQ $a[0].Ino).Count | Should -Be 2
            # and the data is there (on one of the two names)
            ($a[0].Size + $b[0].Size) | Should -BeGreaterThan 0

            $inodes = Invoke-Tool stat @('-c', '%i', '--', (Join-Path $RefRoot 'etc/passwd'), (Join-Path $RefRoot 'etc/passwd-'))
            $inodes.Count | Should -Be 2
            $inodes[1] | Should -Be $inodes[0]
        }

        It 'gives every entry that is not a hardlink an inode number of its own' {
            $dups = @($Listing | Group-Object Ino | Where-Object Count -GT 1 |
                Where-Object { $_.Name -ne "$(($Listing | Where-Object Name -EQ 'etc/passwd').Ino)" } |
                ForEach-Object { ($_.Group.Name -join ', ') })
            $dups -join '; ' | Should -Be ''
        }
    }

    Context 'Get-CpioListing vs GNU cpio -itvn and bsdtar -tvf' {
        BeforeAll {
            # what the independent tools should print, from our strict reader's view of the archive
            $firstByIno = @{}
            $script:Expected = foreach ($e in $Listing) {
                $hard = $null
                if ($e.Type -eq 'File' -and $e.NLink -gt 1) {
                    if ($firstByIno.ContainsKey($e.Ino)) { $hard = $firstByIno[$e.Ino] } else { $firstByIno[$e.Ino] = $e.Name }
                }
                [pscustomobject]@{
                    Name       = $e.Name
                    Mode       = ConvertTo-ModeString $e.Mode
                    NLink      = $e.NLink
                    Uid        = $e.Uid
                    Gid        = $e.Gid
                    Size       = if ($e.Type -in 'CharDevice', 'BlockDevice') { 0L } else { $e.Size }
                    DevMajor   = if ($e.Type -in 'CharDevice', 'BlockDevice') { $e.RDevMajor } else { $null }
                    DevMinor   = if ($e.Type -in 'CharDevice', 'BlockDevice') { $e.RDevMinor } else { $null }
                    LinkTarget = $e.LinkTarget
                    HardlinkTo = $hard
                }
            }
        }

        It 'sees the features of the image in our listing (setuid, setgid, sticky, devices, fifo, symlinks, a hardlink)' {
            $modes = @($Expected | ForEach-Object { "$($_.Mode) $($_.Name)" })
            $modes | Should -Contain '-rwsr-xr-x usr/bin/su'
            $modes | Should -Contain '-rwxr-sr-x usr/bin/wall'
            $modes | Should -Contain 'drwxrwxrwt tmp'
            $modes | Should -Contain 'drwx------ home/user'
            $modes | Should -Contain 'crw-rw-rw- dev/null'
            $modes | Should -Contain 'brw-rw---- dev/loop0'
            $modes | Should -Contain 'prw------- run/initctl'
            ($Expected | Where-Object Name -EQ 'etc/passwd-').HardlinkTo | Should -Be 'etc/passwd'
        }

        It 'GNU cpio -itvn lists the same names in the same order, with the same modes, link counts, numeric owners, sizes, devices and symlink targets' {
            $tool = @(ConvertFrom-LsListing (Invoke-Tool cpio @('-itvn', '--quiet', '-I', $Archive)) 'GNU cpio')
            ($tool.Name -join "`n") | Should -Be ($Expected.Name -join "`n") -Because "the tool's names, in order, were:`n$($tool.Name -join "`n")`n"
            # GNU cpio's listing does not show hardlinks
            $diff = Compare-Listing $Expected $tool 'ours' 'cpio' @('Mode', 'NLink', 'Uid', 'Gid', 'Size', 'DevMajor', 'DevMinor', 'LinkTarget')
            $diff -join "`n" | Should -Be '' -Because ("differences:`n" + ($diff -join "`n") + "`n")
        }

        It 'bsdtar --numeric-owner -tvf lists the same names in the same order, with the same modes, link counts, numeric owners, sizes, devices, symlink targets and hardlinks' {
            $tool = @(ConvertFrom-LsListing (Invoke-Tool bsdtar @('--numeric-owner', '-tvf', $Archive)) 'bsdtar')
            # bsdtar marks a hardlink member 'h' in tar archives and '-' in cpio ones: compare as '-'
            foreach ($t in $tool) { if ($t.HardlinkTo -and $t.Mode[0] -eq 'h') { $t.Mode = '-' + $t.Mode.Substring(1) } }
            ($tool.Name -join "`n") | Should -Be ($Expected.Name -join "`n") -Because "the tool's names, in order, were:`n$($tool.Name -join "`n")`n"
            $diff = Compare-Listing $Expected $tool 'ours' 'bsdtar' @('Mode', 'NLink', 'Uid', 'Gid', 'Size', 'DevMajor', 'DevMinor', 'LinkTarget', 'HardlinkTo')
            $diff -join "`n" | Should -Be '' -Because ("differences:`n" + ($diff -join "`n") + "`n")
        }
    }

    Context 'reproducible output' {
        BeforeAll {
            # A larger input than the cross-check image (several MB, part incompressible), so that
            # zstd's worker threads get more than one job and gzip more than one block.
            $rng = [Random]::new(20231114)
            $noise = [byte[]]::new(6MB); $rng.NextBytes($noise)
            $text = [Text.Encoding]::UTF8.GetBytes((1..120000 | ForEach-Object { "line $_ of a compressible file`n" }) -join '')
            $big = New-TestTar -Entry @(
                @{ Name = 'opt/'; Type = 'Dir' }
                @{ Name = 'opt/noise.bin'; Data = $noise }
                @{ Name = 'opt/text.txt'; Data = $text }
            )
            $script:BigLayout = New-TestOciLayout -Path (Join-Path $Work 'layout-big') -Layer ($Layers + , $big) -Tag 'big'
        }

        It 'two <Compression> exports of the same input are byte-identical' -ForEach @(
            @{ Compression = 'Gzip'; Extension = '.cpio.gz' }
            @{ Compression = 'Zstd'; Extension = '.cpio.zst' }
        ) {
            $first = Join-Path $Work "repro-1$Extension"
            $second = Join-Path $Work "repro-2$Extension"
            $r1 = Get-OciImage "oci:$($BigLayout.Path):big" | Export-Initramfs $first
            # a second, independent run over the same input, a clock second later (so a
            # timestamp taken at export time would show)
            Start-Sleep -Milliseconds 1100
            $r2 = Get-OciImage "oci:$($BigLayout.Path):big" | Export-Initramfs $second

            $r1.Compression | Should -Be $Compression
            $r2.Compression | Should -Be $Compression
            (Get-Item -LiteralPath $first).Length | Should -BeGreaterThan 1MB
            $h1 = (Get-FileHash -LiteralPath $first -Algorithm SHA256).Hash
            $h2 = (Get-FileHash -LiteralPath $second -Algorithm SHA256).Hash
            $h2 | Should -Be $h1
            # the report's hash is the file's
            $r1.Sha256 | Should -Be $h1.ToLowerInvariant()
            # and the archive holds what it should (not, say, two identical empty streams)
            $names = @(Get-CpioListing $first).Name
            $names | Should -Contain 'opt/noise.bin'
            $names | Should -Contain 'init'
        }
    }
}
