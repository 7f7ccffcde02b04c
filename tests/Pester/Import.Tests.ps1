# Import-Initramfs and Compare-Initramfs: existing archives read back the kernel's way.

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    $script:work = New-TestDirectory
    $env:INITRAMFSPS_CACHE = Join-Path $work cache

    # One line per entry of a Rootfs, with the sha256 of each file's bytes; the root is left out.
    function script:Get-RootfsLines {
        param([InitramfsPS.RootFilesystem.Rootfs] $Rootfs)
        foreach ($e in $Rootfs.GetEntries()) {
            if ($e.Path -eq '/') { continue }
            $sha = if ($e.Type -eq 'File') { (Invoke-EngineMethod InitramfsPS.RootFilesystem.RootfsComparer Sha256 -Arguments $e.Content, ([Threading.CancellationToken]::None)) }
            '{0}|{1}|{2}|{3}:{4}|{5}|{6}|{7}:{8}|{9}' -f $e.Path, $e.Type, $e.OctalMode, $e.Uid, $e.Gid, $e.Size, $e.LinkTarget, $e.DevMajor, $e.DevMinor, $sha
        }
    }

    # The same lines for a directory tree on disk (Get-TreeListing, an independent lister).
    function script:Get-TreeLines {
        param([string] $Path)
        $types = @{ Dir = 'Directory' }
        foreach ($t in Get-TreeListing $Path) {
            $type = $types[$t.Type] ?? $t.Type
            $mode = [Convert]::ToString($t.Perm, 8).PadLeft(4, '0')
            $maj = if ($t.Type -in 'CharDevice', 'BlockDevice') { $t.RDevMajor } else { 0 }
            $min = if ($t.Type -in 'CharDevice', 'BlockDevice') { $t.RDevMinor } else { 0 }
            '/{0}|{1}|{2}|{3}:{4}|{5}|{6}|{7}:{8}|{9}' -f $t.Name, $type, $mode, $t.Uid, $t.Gid, $t.Size, $t.LinkTarget, $maj, $min, $t.DataSha256
        }
    }

    # One newc record, with fields that can be made wrong on purpose.
    function script:New-NewcRecord {
        param([string] $Name, [int] $Mode = 0x81A4, [byte[]] $Data = @(), [long] $FileSize = -1, [long] $NameSize = -1,
            [switch] $NoNul, [int] $Ino = 1, [int] $NLink = 1, [string] $Magic = '070701')
        $nameBytes = [Text.Encoding]::UTF8.GetBytes($Name)
        if (-not $NoNul) { $nameBytes += [byte]0 }
        if ($NameSize -lt 0) { $NameSize = $nameBytes.Length }
        if ($FileSize -lt 0) { $FileSize = $Data.Length }
        $fields = @($Ino, $Mode, 0, 0, $NLink, 1700000000, $FileSize, 0, 0, 0, 0, $NameSize, 0)
        $ms = [IO.MemoryStream]::new()
        $head = [Text.Encoding]::ASCII.GetBytes($Magic + (($fields | ForEach-Object { '{0:X8}' -f [long]$_ }) -join ''))
        $ms.Write($head, 0, $head.Length)
        $ms.Write($nameBytes, 0, $nameBytes.Length)
        while ($ms.Length % 4) { $ms.WriteByte(0) }
        $ms.Write($Data, 0, $Data.Length)
        while ($ms.Length % 4) { $ms.WriteByte(0) }
        Write-Output -NoEnumerate $ms.ToArray()
    }

    function script:Invoke-ImportFailing {
        param([string] $Path)
        $err = $null
        $result = Import-Initramfs -LiteralPath $Path -ErrorVariable err -ErrorAction SilentlyContinue -WarningAction SilentlyContinue
        $result | Should -BeNullOrEmpty
        $err.Count | Should -Be 1
        $err[0]
    }

    $tar = New-TestTar -Entry @(
        @{ Name = 'bin/'; Type = 'Dir' },
        @{ Name = 'bin/busybox'; Data = 'pretend this is busybox'; Mode = '0755' },
        @{ Name = 'bin/sh'; Type = 'Hardlink'; LinkName = 'bin/busybox' },
        @{ Name = 'bin/ls'; Type = 'Symlink'; LinkName = 'busybox' },
        @{ Name = 'usr/'; Type = 'Dir' },
        @{ Name = 'usr/bin/'; Type = 'Dir' },
        @{ Name = 'usr/bin/su'; Data = 'setuid'; Mode = '4755' },
        @{ Name = 'dev/'; Type = 'Dir' },
        @{ Name = 'dev/null'; Type = 'CharDevice'; DevMajor = 1; DevMinor = 3; Mode = '0666' },
        @{ Name = 'dev/sda'; Type = 'BlockDevice'; DevMajor = 8; DevMinor = 0; Mode = '0660'; Gid = 6 },
        @{ Name = 'run/'; Type = 'Dir'; Mode = '0700' },
        @{ Name = 'run/fifo'; Type = 'Fifo' },
        @{ Name = 'home/'; Type = 'Dir'; Uid = 1000; Gid = 1000 },
        @{ Name = 'home/empty'; Data = ''; Uid = 1000; Gid = 1000 },
        @{ Name = 'home/big'; Data = [byte[]](1..200000 | ForEach-Object { $_ % 251 }) }
    )
    $image = New-TestOciLayout -Path (Join-Path $work layout) -Layer @(, $tar) -Tag app
    $script:rootfs = Get-OciImage $image.Reference | Expand-OciLayers
    # Pester removes files made inside a Describe when it ends: the exports every block uses are made here.
    foreach ($name in 'plain.cpio', 'gzip.cpio.gz', 'zstd.cpio.zst') {
        $rootfs | Export-Initramfs (Join-Path $work $name) -NoDefaultEntries -Force -WarningAction SilentlyContinue | Out-Null
    }
}

AfterAll {
    Remove-Item -Recurse -Force $work -ErrorAction SilentlyContinue
}

Describe 'Import-Initramfs of our own export' {
    It 'gives back the rootfs that produced it (<Name>)' -ForEach @(
        @{ Name = 'plain.cpio' }, @{ Name = 'gzip.cpio.gz' }, @{ Name = 'zstd.cpio.zst' }
    ) {
        $path = Join-Path $work $Name
        $imported = Import-Initramfs $path -WarningVariable warnings
        $warnings | Should -BeNullOrEmpty
        $imported | Should -BeOfType InitramfsPS.RootFilesystem.Rootfs
        $imported.Image | Should -BeNullOrEmpty
        $imported.Changes | Should -Contain "imported from $path"
        Get-RootfsLines $imported | Should -Be @(Get-RootfsLines $rootfs)
        $imported.Size | Should -Be $rootfs.Size
        $busybox = $imported.GetEntry('/bin/busybox')
        $busybox.Hardlink | Should -Not -BeNullOrEmpty
        [object]::ReferenceEquals($busybox.Hardlink, $imported.GetEntry('/bin/sh').Hardlink) | Should -BeTrue
        $imported.GetEntry('/usr/bin/su').Hardlink | Should -BeNullOrEmpty
    }

    It 'points plain files into the archive and compressed ones into the imports area of the cache' {
        $plain = Import-Initramfs (Join-Path $work plain.cpio)
        $plain.GetEntry('/home/big').Content.FilePath | Should -Be (Join-Path $work plain.cpio)
        $zstd = Import-Initramfs (Join-Path $work zstd.cpio.zst)
        $zstd.GetEntry('/home/big').Content.FilePath | Should -BeLike "$(Join-Path $work cache)/imports/blobs/sha256/*"
    }

    It 'exports an imported archive to the same bytes' {
        $again = Join-Path $work again.cpio
        Import-Initramfs (Join-Path $work gzip.cpio.gz) | Export-Initramfs $again -NoDefaultEntries -Force -WarningAction SilentlyContinue | Out-Null
        (Get-FileHash $again).Hash | Should -Be (Get-FileHash (Join-Path $work plain.cpio)).Hash
    }

    It 'takes wildcards and pipeline input, one Rootfs per file' {
        @(Import-Initramfs (Join-Path $work '*.cpio*')).Count | Should -Be @(Get-ChildItem (Join-Path $work '*.cpio*')).Count
        @(Import-Initramfs (Join-Path $work '*.cpio*')).Count | Should -BeGreaterOrEqual 3
        @(Get-ChildItem (Join-Path $work '*.cpio.gz') | Import-Initramfs).Count | Should -Be 1
    }
}

Describe 'Import-Initramfs of a GNU cpio archive' {
    BeforeAll {
        $script:tree = Join-Path $work tree
        New-Item -ItemType Directory "$tree/bin", "$tree/dev", "$tree/etc", "$tree/home/user" | Out-Null
        [IO.File]::WriteAllText("$tree/bin/busybox", 'a static busybox')
        & ln "$tree/bin/busybox" "$tree/bin/sh"
        & ln "$tree/bin/busybox" "$tree/bin/mount"
        & ln -s busybox "$tree/bin/ls"
        & ln -s /etc/missing "$tree/etc/dangling"
        & mknod "$tree/dev/null" c 1 3
        & mknod "$tree/dev/loop0" b 7 0
        & mkfifo "$tree/dev/fifo"
        [IO.File]::WriteAllText("$tree/bin/su", 'setuid root')
        & chmod 4755 "$tree/bin/su"
        & chmod 2775 "$tree/home"
        [IO.File]::WriteAllText("$tree/home/user/notes", "line`n")
        & chown -R 1000:100 "$tree/home/user"
        [IO.File]::WriteAllBytes("$tree/etc/empty", [byte[]]::new(0))
        $script:gnu = Join-Path $work gnu.cpio
        & sh -c 'cd "$1" && find . -print0 | cpio -0 -o -H newc --quiet > "$2"' sh $tree $gnu
        $LASTEXITCODE | Should -Be 0
    }

    It 'equals the tree it was made from' {
        $imported = Import-Initramfs $gnu -WarningVariable warnings
        $warnings | Should -BeNullOrEmpty
        Get-RootfsLines $imported | Should -Be @(Get-TreeLines $tree)
    }

    It 'keeps the hardlinks as one group with the data GNU cpio put on the last name' {
        $imported = Import-Initramfs $gnu
        $names = '/bin/busybox', '/bin/sh', '/bin/mount'
        $groups = $names | ForEach-Object { $imported.GetEntry($_).Hardlink }
        $groups[0] | Should -Not -BeNullOrEmpty
        @($groups | Where-Object { -not [object]::ReferenceEquals($_, $groups[0]) }).Count | Should -Be 0
        $names | ForEach-Object { $imported.GetEntry($_).Size | Should -Be 16 }
    }

    It 'reads it gzip-compressed by gzip(1) as well' {
        $gz = "$gnu.gz"
        & sh -c 'gzip -9 -c "$1" > "$2"' sh $gnu $gz
        Get-RootfsLines (Import-Initramfs $gz) | Should -Be @(Get-TreeLines $tree)
    }
}

Describe 'Import-Initramfs of concatenated parts' {
    BeforeAll {
        $a = New-TestTar -Entry @(
            @{ Name = 'a/'; Type = 'Dir' },
            @{ Name = 'a/x'; Data = 'first' },
            @{ Name = 'a/y'; Data = 'stays' },
            @{ Name = 'a/link1'; Data = 'linked' },
            @{ Name = 'a/link2'; Type = 'Hardlink'; LinkName = 'a/link1' }
        )
        $b = New-TestTar -Entry @(
            @{ Name = 'a/'; Type = 'Dir'; Mode = '0750' },
            @{ Name = 'a/x'; Data = 'second part wins'; Mode = '0600' },
            @{ Name = 'b'; Data = 'only in b' }
        )
        $ra = Get-OciImage (New-TestOciLayout -Path (Join-Path $work la) -Layer @(, $a) -Tag t).Reference | Expand-OciLayers
        $rb = Get-OciImage (New-TestOciLayout -Path (Join-Path $work lb) -Layer @(, $b) -Tag t).Reference | Expand-OciLayers
        $ra | Export-Initramfs (Join-Path $work part-a.cpio.gz) -NoDefaultEntries -Force -WarningAction SilentlyContinue | Out-Null
        $rb | Export-Initramfs (Join-Path $work part-b.cpio.zst) -NoDefaultEntries -Force -WarningAction SilentlyContinue | Out-Null
        $ctree = Join-Path $work ctree
        New-Item -ItemType Directory "$ctree/c" | Out-Null
        [IO.File]::WriteAllText("$ctree/c/plain", 'from the plain part')
        $cpio = Join-Path $work part-c.cpio
        & sh -c 'cd "$1" && find c -print0 | cpio -0 -o -H newc --quiet > "$2"' sh $ctree $cpio

        $ms = [IO.MemoryStream]::new()
        $gz = [IO.File]::ReadAllBytes((Join-Path $work part-a.cpio.gz)); $ms.Write($gz, 0, $gz.Length)
        $ms.Write([byte[]]::new(3), 0, 3)
        $zst = [IO.File]::ReadAllBytes((Join-Path $work part-b.cpio.zst)); $ms.Write($zst, 0, $zst.Length)
        do { $ms.WriteByte(0) } while ($ms.Length % 4)
        $ms.Write([byte[]]::new(8), 0, 8)
        $plain = [IO.File]::ReadAllBytes($cpio); $ms.Write($plain, 0, $plain.Length)
        $ms.Write([byte[]]::new(5), 0, 5)
        $script:concat = Join-Path $work concat.img
        [IO.File]::WriteAllBytes($concat, $ms.ToArray())
        $script:union = Import-Initramfs $concat -WarningVariable warnings
        $script:unionWarnings = $warnings
    }

    It 'finds the three parts, with the padding between them' {
        $result = [InitramfsPS.Initramfs]::Import($concat, [InitramfsPS.InitramfsCache]::new("$work/cache"), [InitramfsPS.Initramfs]::DefaultMaxImportSize, $null, [Threading.CancellationToken]::None)
        $result.Parts.Compression | Should -Be @('gzip', 'zstd', 'none')
        $result.Parts[0].Offset | Should -Be 0
        $result.Parts[0].Length | Should -Be (Get-Item (Join-Path $work part-a.cpio.gz)).Length
        $result.Parts[1].Offset | Should -Be ($result.Parts[0].Length + 3)
    }

    It 'equals the union of the parts, later parts replacing earlier entries' {
        $unionWarnings | Should -BeNullOrEmpty
        $union.GetEntries().Path | Should -Be @('/', '/a', '/a/link1', '/a/link2', '/a/x', '/a/y', '/b', '/c', '/c/plain')
        $x = $union.GetEntry('/a/x')
        $x.OctalMode | Should -Be '0600'
        (Invoke-EngineMethod InitramfsPS.RootFilesystem.RootfsComparer Sha256 -Arguments $x.Content, ([Threading.CancellationToken]::None)) |
            Should -Be (Get-FileHash -InputStream ([IO.MemoryStream]::new([Text.Encoding]::UTF8.GetBytes('second part wins')))).Hash.ToLowerInvariant()
        $union.GetEntry('/a').OctalMode | Should -Be '0750' -Because 'a directory over a directory takes the new metadata and keeps the children'
        $union.GetEntry('/a/y').Size | Should -Be 5
        [object]::ReferenceEquals($union.GetEntry('/a/link1').Hardlink, $union.GetEntry('/a/link2').Hardlink) | Should -BeTrue
        $union.GetEntry('/c/plain').Size | Should -Be 19
    }

    It 'reads what the kernel reads: the same entries as the independent reader' {
        $listing = Get-CpioListing $concat -AllowMissingTrailer
        $names = $listing.Name | ForEach-Object { if ($_ -eq '.') { '/' } else { '/' + $_ } } | Sort-Object -Unique
        $union.GetEntries().Path | Sort-Object | Should -Be @($names)
    }

    It 'drops an entry whose parent is missing, with a warning, as the kernel does' {
        $bytes = (New-NewcRecord -Name 'ok' -Data ([byte[]](65, 66))) + (New-NewcRecord -Name 'nodir/file' -Data ([byte[]](1))) + (New-NewcRecord -Name 'TRAILER!!!')
        $path = Join-Path $work orphan.cpio
        [IO.File]::WriteAllBytes($path, $bytes)
        $r = Import-Initramfs $path -WarningVariable warnings -WarningAction SilentlyContinue
        $r.GetEntries().Path | Should -Be @('/', '/ok')
        "$warnings" | Should -Match 'nodir/file.*parent directory /nodir does not exist'
    }
}

Describe 'Compare-Initramfs' {
    BeforeAll {
        $ref = New-TestTar -Entry @(
            @{ Name = 'same'; Data = 'unchanged' },
            @{ Name = 'content'; Data = 'aaaa' },
            @{ Name = 'size'; Data = 'short' },
            @{ Name = 'mode'; Data = 'm'; Mode = '0644' },
            @{ Name = 'owner'; Data = 'o' },
            @{ Name = 'link'; Type = 'Symlink'; LinkName = 'same' },
            @{ Name = 'gone/'; Type = 'Dir' },
            @{ Name = 'gone/file'; Data = 'bye' },
            @{ Name = 'kind'; Data = 'a file' },
            @{ Name = 'dev'; Type = 'CharDevice'; DevMajor = 1; DevMinor = 3 }
        )
        $diff = New-TestTar -Entry @(
            @{ Name = 'same'; Data = 'unchanged' },
            @{ Name = 'content'; Data = 'bbbb' },
            @{ Name = 'size'; Data = 'much longer' },
            @{ Name = 'mode'; Data = 'm'; Mode = '4755' },
            @{ Name = 'owner'; Data = 'o'; Uid = 1000 },
            @{ Name = 'link'; Type = 'Symlink'; LinkName = 'content' },
            @{ Name = 'kind/'; Type = 'Dir' },
            @{ Name = 'dev'; Type = 'CharDevice'; DevMajor = 1; DevMinor = 5 },
            @{ Name = 'new'; Data = 'hello' }
        )
        $script:refRootfs = Get-OciImage (New-TestOciLayout -Path (Join-Path $work cref) -Layer @(, $ref) -Tag t).Reference | Expand-OciLayers
        $script:diffRootfs = Get-OciImage (New-TestOciLayout -Path (Join-Path $work cdiff) -Layer @(, $diff) -Tag t).Reference | Expand-OciLayers
        $script:expected = @(
            '~ /content (Content)', '~ /dev (Device)', '- /gone', '- /gone/file', '~ /kind (Type, Mode)', '~ /link (LinkTarget)',
            '~ /mode (Mode)', '+ /new', '~ /owner (Owner)', '~ /size (Size)'
        )
    }

    It 'reports exactly the added, removed and changed entries' {
        $d = Compare-Initramfs $refRootfs $diffRootfs
        $d | ForEach-Object ToString | Should -Be $expected
        ($d | Where-Object Path -EQ '/new').Change | Should -Be 'Added'
        ($d | Where-Object Path -EQ '/gone').Change | Should -Be 'Removed'
        ($d | Where-Object Path -EQ '/gone').Reference.Type | Should -Be 'Directory'
        ($d | Where-Object Path -EQ '/size').Difference.Size | Should -Be 11
    }

    It 'compares archives given by path, and a rootfs from the pipeline' {
        $refRootfs | Export-Initramfs (Join-Path $work cref.cpio.gz) -NoDefaultEntries -Force -WarningAction SilentlyContinue | Out-Null
        $diffRootfs | Export-Initramfs (Join-Path $work cdiff.cpio.zst) -NoDefaultEntries -Force -WarningAction SilentlyContinue | Out-Null
        Compare-Initramfs (Join-Path $work cref.cpio.gz) (Join-Path $work cdiff.cpio.zst) | ForEach-Object ToString | Should -Be $expected
        $diffRootfs | Compare-Initramfs (Join-Path $work cref.cpio.gz) | ForEach-Object ToString | Should -Be $expected
    }

    It 'finds nothing between a rootfs and its own export, and lists everything with -IncludeEqual' {
        Compare-Initramfs $refRootfs (Join-Path $work cref.cpio.gz) | Should -BeNullOrEmpty
        $all = Compare-Initramfs $refRootfs $refRootfs -IncludeEqual
        $all.Count | Should -Be $refRootfs.Count
        $all.Change | Sort-Object -Unique | Should -Be 'Equal'
    }

    It 'refuses input that is no rootfs' {
        $err = $null
        Compare-Initramfs $refRootfs 42 -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Be 'CompareInputInvalid,InitramfsPS.Commands.CompareInitramfsCommand'
    }
}

Describe 'Hostile and broken archives' {
    BeforeAll {
        $script:good = (New-NewcRecord -Name '.' -Mode 0x41ED) + (New-NewcRecord -Name 'file' -Data ([Text.Encoding]::ASCII.GetBytes('twelve bytes'))) + (New-NewcRecord -Name 'TRAILER!!!')
        function script:Save-Bytes([string] $Name, [byte[]] $Bytes) { $p = Join-Path $work $Name; [IO.File]::WriteAllBytes($p, $Bytes); $p }
    }

    It 'a well-formed handmade archive imports' {
        (Import-Initramfs (Save-Bytes good.cpio $good)).GetEntry('/file').Size | Should -Be 12
    }

    It '<Case> is <Id>' -ForEach @(
        @{ Case = 'a truncated archive'; Id = 'ArchiveTruncated'; Category = 'InvalidData'; Make = { $good[0..150] } }
        @{ Case = 'a size field past the end'; Id = 'ArchiveTruncated'; Category = 'InvalidData'; Make = { New-NewcRecord -Name 'big' -Data ([byte[]](1, 2, 3, 4)) -FileSize 0x7FFFFFF0 } }
        @{ Case = 'a name size past the end'; Id = 'ArchiveTruncated'; Category = 'InvalidData'; Make = { New-NewcRecord -Name 'n' -NameSize 4294967280 } }
        @{ Case = 'bad magic'; Id = 'ArchiveInvalid'; Category = 'InvalidData'; Make = { [Text.Encoding]::ASCII.GetBytes('this is not an initramfs') } }
        @{ Case = 'an odc (070707) archive'; Id = 'ArchiveInvalid'; Category = 'InvalidData'; Make = { New-NewcRecord -Name 'x' -Magic '070707' } }
        @{ Case = 'a header with a non-hex field'; Id = 'ArchiveInvalid'; Category = 'InvalidData'; Make = { $b = New-NewcRecord -Name 'x'; $b[20] = [byte][char]'G'; , $b } }
        @{ Case = 'a name without its NUL'; Id = 'ArchiveInvalid'; Category = 'InvalidData'; Make = { New-NewcRecord -Name 'abc' -NoNul } }
        @{ Case = 'junk after a plain part'; Id = 'ArchiveInvalid'; Category = 'InvalidData'; Make = { $good + [Text.Encoding]::ASCII.GetBytes('JUNKJUNK') } }
        @{ Case = 'an xz part'; Id = 'ArchiveCompressionUnsupported'; Category = 'NotImplemented'; Make = { [byte[]](0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00, 1, 2, 3, 4) } }
        @{ Case = 'a bzip2 part'; Id = 'ArchiveCompressionUnsupported'; Category = 'NotImplemented'; Make = { [Text.Encoding]::ASCII.GetBytes('BZh91AY&SY') } }
        @{ Case = 'a truncated gzip part'; Id = 'ArchiveTruncated'; Category = 'InvalidData'; Make = { $z = [IO.File]::ReadAllBytes((Join-Path $work gzip.cpio.gz)); , $z[0..($z.Length - 100)] } }
        @{ Case = 'a gzip part of garbage'; Id = 'ArchiveCorrupt'; Category = 'InvalidData'; Make = { [byte[]](0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3) + [byte[]](1..200 | ForEach-Object { 0xFF }) } }
        @{ Case = 'a gzip part with a wrong CRC'; Id = 'ArchiveCorrupt'; Category = 'InvalidData'; Make = { $z = [IO.File]::ReadAllBytes((Join-Path $work gzip.cpio.gz)); $z[-8] = $z[-8] -bxor 0xFF; , $z } }
        @{ Case = 'a truncated zstd part'; Id = 'ArchiveTruncated'; Category = 'InvalidData'; Make = { $z = [IO.File]::ReadAllBytes((Join-Path $work zstd.cpio.zst)); , $z[0..($z.Length - 30)] } }
        @{ Case = 'a zstd part that ends mid-entry'; Id = 'ArchiveTruncated'; Category = 'InvalidData'; Make = {
                $p = Save-Bytes cut.cpio $good[0..150]; & zstd -q -f $p -o "$p.zst"; , [IO.File]::ReadAllBytes("$p.zst") } }
        @{ Case = 'junk inside a compressed part'; Id = 'ArchiveInvalid'; Category = 'InvalidData'; Make = {
                $p = Save-Bytes junk.cpio ($good + [Text.Encoding]::ASCII.GetBytes('JUNK')); & zstd -q -f $p -o "$p.zst"; , [IO.File]::ReadAllBytes("$p.zst") } }
    ) {
        $bytes = & $Make
        $err = Invoke-ImportFailing (Save-Bytes "hostile-$([guid]::NewGuid()).img" $bytes)
        $err.FullyQualifiedErrorId | Should -Be "$Id,InitramfsPS.Commands.ImportInitramfsCommand"
        "$($err.CategoryInfo.Category)" | Should -Be $Category
        $err.Exception.Message | Should -Not -BeNullOrEmpty
    }

    It 'a missing file is ArchiveNotFound' {
        $err = Invoke-ImportFailing (Join-Path $work 'no-such.cpio')
        $err.FullyQualifiedErrorId | Should -Be 'ArchiveNotFound,InitramfsPS.Commands.ImportInitramfsCommand'
    }

    It 'an archive that expands past -MaxSize is ArchiveTooLarge' {
        $err = $null
        Import-Initramfs (Join-Path $work zstd.cpio.zst) -MaxSize 1000 -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -Be 'ArchiveTooLarge,InitramfsPS.Commands.ImportInitramfsCommand'
    }

    It 'entries the kernel skips are dropped with a warning: <Case>' -ForEach @(
        @{ Case = 'a directory with data'; Record = { New-NewcRecord -Name 'd' -Mode 0x41ED -Data ([byte[]](1, 2)) }; Pattern = "'d' was dropped" }
        @{ Case = 'an empty name size'; Record = { New-NewcRecord -Name 'e' -NameSize 0 }; Pattern = 'name is 0 bytes' }
        @{ Case = 'an unknown file type'; Record = { New-NewcRecord -Name 'u' -Mode 0x01A4 }; Pattern = "'u' was dropped" }
    ) {
        $bytes = (& $Record) + (New-NewcRecord -Name 'after' -Data ([byte[]](7)))
        $r = Import-Initramfs (Save-Bytes "skip-$([guid]::NewGuid()).cpio" $bytes) -WarningVariable warnings -WarningAction SilentlyContinue
        $r.GetEntries().Path | Should -Be @('/', '/after')
        "$warnings" | Should -Match ([regex]::Escape($Pattern))
    }

    It 'never climbs above the root: ../ names land inside' {
        $bytes = (New-NewcRecord -Name '../../etc' -Mode 0x41ED) + (New-NewcRecord -Name '/etc/../../etc/passwd' -Data ([byte[]](120)))
        $r = Import-Initramfs (Save-Bytes climb.cpio $bytes)
        $r.GetEntries().Path | Should -Be @('/', '/etc', '/etc/passwd')
    }
}
