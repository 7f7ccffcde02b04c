# Tests of the test helpers themselves: each checks a helper against an independent tool
# (GNU tar, bsdtar, skopeo, umoci, GNU cpio, zstd, find/stat, QEMU).

BeforeDiscovery {
    $script:IsRoot = ((& id -u) -eq '0')
    $script:HasQemu = [bool](Get-Command qemu-system-x86_64 -ErrorAction SilentlyContinue) -and
        [bool](Get-ChildItem /boot -Filter 'vmlinuz-*' -ErrorAction SilentlyContinue)
}

BeforeAll {
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    $env:TZ = 'UTC'
    $script:IsRoot = ((& id -u) -eq '0')

    function Get-Sha256OfBytes([byte[]] $Bytes) {
        [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData($Bytes)).ToLowerInvariant()
    }
    function Get-Sha256OfFile([string] $Path) {
        (Get-FileHash -LiteralPath $Path -Algorithm SHA256).Hash.ToLowerInvariant()
    }
    function Save-Bytes([byte[]] $Bytes, [string] $Name) {
        $p = Join-Path $TestDrive $Name
        [IO.File]::WriteAllBytes($p, $Bytes)
        $p
    }
    # "-rw-r--r-- 1000/100  11 2023-11-14 22:13 name" (GNU tar -tv --numeric-owner)
    function Get-GnuTarListing([string] $Path, [switch] $Names) {
        $lines = if ($Names) { & tar -tvf $Path 2>&1 } else { & tar --numeric-owner -tvf $Path 2>&1 }
        if ($LASTEXITCODE -ne 0) { throw "tar -tvf failed: $lines" }
        foreach ($l in $lines) {
            if ($l -match '^(?<mode>\S{10}) (?<owner>\S+)\s+(?<size>\d+,\d+|\d+) (?<date>\d{4}-\d\d-\d\d \d\d:\d\d) (?<rest>.*)$') {
                [pscustomobject]@{ Mode = $Matches.mode; Owner = $Matches.owner; Size = $Matches.size; Date = $Matches.date; Rest = $Matches.rest }
            }
        }
    }
    # "crw-------  0 0      0         5,1 Nov 14  2023 dev/console" (bsdtar -tv --numeric-owner)
    function Get-BsdTarListing([string] $Path) {
        $lines = & bsdtar --numeric-owner -tvf $Path 2>&1
        if ($LASTEXITCODE -ne 0) { throw "bsdtar -tvf failed: $lines" }
        foreach ($l in $lines) {
            if ($l -match '^(?<mode>\S{10})\s+\d+ (?<uid>\S+)\s+(?<gid>\S+)\s+(?<size>\d+,\s*\d+|\d+) (?<date>\w{3} +\d+ +(\d{4}|\d\d:\d\d)) (?<rest>.*)$') {
                [pscustomobject]@{ Mode = $Matches.mode; Uid = $Matches.uid; Gid = $Matches.gid; Size = ($Matches.size -replace '\s', ''); Rest = $Matches.rest }
            }
        }
    }
    function Invoke-Sh([string] $Script) {
        $out = & sh -c $Script 2>&1
        if ($LASTEXITCODE -ne 0) { throw "sh -c failed ($LASTEXITCODE): $Script`n$out" }
        $out
    }
}

Describe 'New-TestTar' {
    BeforeAll {
        $script:longSplit = ('d' * 60) + '/' + ('e' * 60) + '/' + ('f' * 90)      # 212 bytes, splits at a '/'
        $script:longPax = 'p' * 150                                                # no '/' to split at
        $script:longLink = 't' * 120
        $script:binary = [byte[]](0..255) + [byte[]](0, 1, 2)
        $script:entries = @(
            @{ Name = 'etc/'; Type = 'Dir'; Mode = '0750'; Uid = 1000; Gid = 100; UName = 'alice'; GName = 'staff' }
            @{ Name = './etc/passwd'; Data = "root:x:0:0`n"; Mode = [Convert]::ToInt32('4755', 8); Uid = 5; Gid = 6 }
            @{ Name = 'etc/bin.dat'; Data = $binary; Mode = 0x1A4 }
            @{ Name = 'bin/sh'; Type = 'Symlink'; LinkName = 'busybox' }
            @{ Name = 'bin/hl'; Type = 'Hardlink'; LinkName = './etc/passwd' }
            @{ Name = 'dev/console'; Type = 'CharDevice'; DevMajor = 5; DevMinor = 1; Mode = '0600' }
            @{ Name = 'dev/sdb3'; Type = 'BlockDevice'; DevMajor = 8; DevMinor = 19; Mode = '0660'; Gid = 6 }
            @{ Name = 'run/fifo'; Type = 'Fifo'; Mode = '0640'; Uid = 7 }
            @{ Name = $longSplit; Data = [byte[]](1, 2, 3) }
            @{ Name = $longPax; Data = 'q' }
            @{ Name = 'lnk'; Type = 'Symlink'; LinkName = $longLink }
            @{ Name = '/abs/../x'; Data = 'z'; Uid = 3000000; MTime = 1600000000 }
        )
        $script:tarBytes = New-TestTar -Entry $entries
        $script:tarPath = Save-Bytes $tarBytes 'all.tar'
    }

    It 'returns one byte[] ending in two zero blocks, length a multiple of 512' {
        , $tarBytes | Should -BeOfType [byte[]]
        $tarBytes.Length % 512 | Should -Be 0
        $tail = $tarBytes[($tarBytes.Length - 1024)..($tarBytes.Length - 1)]
        ($tail | Where-Object { $_ -ne 0 }).Count | Should -Be 0
    }

    It 'GNU tar lists exact types, modes, owners, sizes, device numbers and link targets' {
        $l = @(Get-GnuTarListing $tarPath)
        $l.Count | Should -Be 12
        $l[0].Mode | Should -BeExactly 'drwxr-x---'; $l[0].Owner | Should -Be '1000/100'; $l[0].Rest | Should -BeExactly 'etc/'
        $l[1].Mode | Should -BeExactly '-rwsr-xr-x'; $l[1].Owner | Should -Be '5/6'; $l[1].Size | Should -Be '11'; $l[1].Rest | Should -BeExactly './etc/passwd'
        $l[1].Date | Should -Be '2023-11-14 22:13'
        $l[2].Mode | Should -BeExactly '-rw-r--r--'; $l[2].Size | Should -Be '259'
        $l[3].Mode | Should -BeExactly 'lrwxrwxrwx'; $l[3].Rest | Should -BeExactly 'bin/sh -> busybox'
        $l[4].Mode | Should -BeExactly 'hrw-r--r--'; $l[4].Rest | Should -BeExactly 'bin/hl link to ./etc/passwd'
        $l[5].Mode | Should -BeExactly 'crw-------'; $l[5].Size | Should -Be '5,1'; $l[5].Rest | Should -BeExactly 'dev/console'
        $l[6].Mode | Should -BeExactly 'brw-rw----'; $l[6].Size | Should -Be '8,19'; $l[6].Owner | Should -Be '0/6'
        $l[7].Mode | Should -BeExactly 'prw-r-----'; $l[7].Owner | Should -Be '7/0'
        $l[8].Rest | Should -BeExactly $longSplit; $l[8].Size | Should -Be '3'
        $l[9].Rest | Should -BeExactly $longPax
        $l[10].Rest | Should -BeExactly "lnk -> $longLink"
        $l[11].Owner | Should -Be '3000000/0'; $l[11].Date | Should -Be '2020-09-13 12:26'
    }

    It 'GNU tar shows the owner names' {
        (Get-GnuTarListing $tarPath -Names)[0].Owner | Should -Be 'alice/staff'
    }

    It 'bsdtar lists the same types, modes, owners and device numbers' {
        $l = @(Get-BsdTarListing $tarPath)
        $l.Count | Should -Be 12
        $l[0].Mode | Should -BeExactly 'drwxr-x---'; $l[0].Uid | Should -Be '1000'; $l[0].Gid | Should -Be '100'
        $l[1].Mode | Should -BeExactly '-rwsr-xr-x'; $l[1].Uid | Should -Be '5'; $l[1].Gid | Should -Be '6'; $l[1].Size | Should -Be '11'
        $l[3].Rest | Should -BeExactly 'bin/sh -> busybox'
        $l[4].Mode | Should -BeExactly 'hrw-r--r--'; $l[4].Rest | Should -BeExactly 'bin/hl link to ./etc/passwd'
        $l[5].Mode | Should -BeExactly 'crw-------'; $l[5].Size | Should -Be '5,1'
        $l[6].Mode | Should -BeExactly 'brw-rw----'; $l[6].Size | Should -Be '8,19'
        $l[7].Mode | Should -BeExactly 'prw-r-----'
        $l[8].Rest | Should -BeExactly $longSplit
        $l[9].Rest | Should -BeExactly $longPax
        $l[10].Rest | Should -BeExactly "lnk -> $longLink"
        $l[11].Uid | Should -Be '3000000'
    }

    It 'stores file data exactly (string as UTF-8, byte[] as is)' {
        $out = Join-Path $TestDrive 'bin.dat'
        Invoke-Sh "tar -xOf '$tarPath' etc/bin.dat > '$out'"
        Get-Sha256OfFile $out | Should -Be (Get-Sha256OfBytes $binary)
        Invoke-Sh "tar -xOf '$tarPath' ./etc/passwd > '$out'"
        [IO.File]::ReadAllText($out) | Should -BeExactly "root:x:0:0`n"
    }

    It 'uses the ustar prefix for a splittable long name and a PAX header otherwise' {
        # headers in order: etc, passwd, bin.dat(+1 data block), sh, hl, console, sdb3, fifo, longSplit
        $off = 512 * 10   # 8 headers + 2 data blocks (passwd, bin.dat) ... bin.dat has 259 bytes = 1 block
        [char]$tarBytes[$off + 156] | Should -Be '0'
        [Text.Encoding]::ASCII.GetString($tarBytes, $off + 345, 121) | Should -BeExactly (('d' * 60) + '/' + ('e' * 60))
        $paxOff = $off + 1024   # longSplit header + its data block
        [char]$tarBytes[$paxOff + 156] | Should -Be 'x'
        [Text.Encoding]::ASCII.GetString($tarBytes, $paxOff + 512, 160) | Should -Match "^\d+ path=p{150}`n"
    }

    It 'writes a correct ustar magic, version and checksum in every header' {
        $off = 0
        while ($off -lt $tarBytes.Length) {
            $h = $tarBytes[$off..($off + 511)]
            if (($h | Where-Object { $_ -ne 0 }).Count -eq 0) { $off += 512; continue }
            [Text.Encoding]::ASCII.GetString($tarBytes, $off + 257, 8) | Should -BeExactly ("ustar`0" + '00')
            $sum = 0; for ($i = 0; $i -lt 512; $i++) { $sum += if ($i -ge 148 -and $i -lt 156) { 32 } else { $h[$i] } }
            [Convert]::ToInt32([Text.Encoding]::ASCII.GetString($tarBytes, $off + 148, 6), 8) | Should -Be $sum
            $size = [Convert]::ToInt64([Text.Encoding]::ASCII.GetString($tarBytes, $off + 124, 11), 8)
            $off += 512 + [Math]::Ceiling($size / 512) * 512
        }
        $off | Should -Be $tarBytes.Length
    }

    It '-NoEndBlocks ends right after the last padded data block' {
        $t = New-TestTar -Entry @(@{ Name = 'a'; Data = 'x' * 600 }) -NoEndBlocks
        $t.Length | Should -Be (512 + 1024)
        $t.Length % 512 | Should -Be 0
        $t[1024] | Should -Be ([byte][char]'x')     # first byte of the last (second) data block
        $t[1024 + 88] | Should -Be 0                 # padding after the 600th byte
        $withEnd = New-TestTar -Entry @(@{ Name = 'a'; Data = 'x' * 600 })
        $withEnd.Length | Should -Be ($t.Length + 1024)
        & tar -tf (Save-Bytes $t 'noend.tar') 2>$null | Should -Be 'a'
    }

    It 'writes -OutFile with the same bytes' {
        $p = Join-Path $TestDrive 'out.tar'
        $r = New-TestTar -Entry @(@{ Name = 'a'; Data = 'b' }) -OutFile $p
        $r | Should -BeNullOrEmpty
        Get-Sha256OfFile $p | Should -Be (Get-Sha256OfBytes (New-TestTar -Entry @(@{ Name = 'a'; Data = 'b' })))
    }

    It 'emits an explicit PAX header (path override) before the entry' {
        $t = New-TestTar -Entry @(@{ Name = 'short'; Data = 'x'; Pax = @{ path = '../escape/name' } })
        [char]$t[156] | Should -Be 'x'
        & bsdtar -tf (Save-Bytes $t 'pax.tar') | Should -Be '../escape/name'
    }

    It 'writes a wrong checksum with RawChecksum, which readers reject' {
        $t = New-TestTar -Entry @(@{ Name = 'a'; Data = 'b'; RawChecksum = 12345 })
        [Convert]::ToInt32([Text.Encoding]::ASCII.GetString($t, 148, 6), 8) | Should -Be 12345
        $p = Save-Bytes $t 'badsum.tar'
        & tar -tf $p 2>&1 | Out-Null
        $LASTEXITCODE | Should -Not -Be 0
        & bsdtar -tf $p 2>&1 | Out-Null
        $LASTEXITCODE | Should -Not -Be 0
    }

    It 'writes the hostile Size and TypeFlag overrides as given' {
        $t = New-TestTar -Entry @(@{ Name = 'a'; Data = 'abc'; Size = 4096 }, @{ Name = 'b'; TypeFlag = 'L' })
        [Convert]::ToInt64([Text.Encoding]::ASCII.GetString($t, 124, 11), 8) | Should -Be 4096
        [char]$t[1024 + 156] | Should -Be 'L'
        $t.Length | Should -Be (512 * 3 + 1024)
    }

    It 'throws on an unknown Type' {
        { New-TestTar -Entry @(@{ Name = 'a'; Type = 'Door' }) } | Should -Throw '*Unknown tar entry Type*'
    }
}

Describe 'New-TestOciLayout' {
    BeforeAll {
        $script:l1 = New-TestTar -Entry @(
            @{ Name = 'bin/'; Type = 'Dir' }
            @{ Name = 'bin/tool'; Data = "#!/bin/sh`necho tool`n"; Mode = '4755'; Uid = 1000; Gid = 1000 }
            @{ Name = 'dev/'; Type = 'Dir' }
            @{ Name = 'dev/null'; Type = 'CharDevice'; DevMajor = 1; DevMinor = 3; Mode = '0666' }
            @{ Name = 'bin/link'; Type = 'Symlink'; LinkName = 'tool' }
        )
        $script:l2 = New-TestTar -Entry @(@{ Name = 'etc/'; Type = 'Dir' }, @{ Name = 'etc/hostname'; Data = "box`n"; Mode = '0600'; Uid = 33; Gid = 44 })
        $script:layout = Join-Path $TestDrive 'layout'
        $script:cfg = @{ Entrypoint = '/bin/tool'; Cmd = @('-x', 'y'); Env = @('PATH=/bin', 'A=b'); WorkingDir = '/etc'; User = '1000:1000' }
        $script:img = New-TestOciLayout -Path $layout -Layer @($l1, $l2) -Config $cfg
    }

    It 'returns the documented properties' {
        $img.Path | Should -Be $layout
        $img.Tag | Should -Be 'test'
        $img.Reference | Should -Be "oci:${layout}:test"
        $img.ManifestDigest | Should -Match '^sha256:[0-9a-f]{64}$'
        $img.ConfigDigest | Should -Match '^sha256:[0-9a-f]{64}$'
        $img.LayerDigests.Count | Should -Be 2
        $img.DiffIds | Should -Be @("sha256:$(Get-Sha256OfBytes $l1)", "sha256:$(Get-Sha256OfBytes $l2)")
    }

    It 'passes skopeo inspect with matching digests and config' {
        $j = & skopeo inspect $img.Reference | ConvertFrom-Json
        $LASTEXITCODE | Should -Be 0
        $j.Digest | Should -Be $img.ManifestDigest
        $j.Layers | Should -Be $img.LayerDigests
        $j.Architecture | Should -Be 'amd64'; $j.Os | Should -Be 'linux'
        $c = & skopeo inspect --config $img.Reference | ConvertFrom-Json
        $c.config.Entrypoint | Should -Be @('/bin/tool')
        $c.config.Cmd | Should -Be @('-x', 'y')
        $c.config.Env | Should -Be @('PATH=/bin', 'A=b')
        $c.config.WorkingDir | Should -Be '/etc'
        $c.config.User | Should -Be '1000:1000'
        $c.rootfs.diff_ids | Should -Be $img.DiffIds
    }

    It 'names every blob by the sha256 of its content, with the right sizes and media types' {
        foreach ($f in Get-ChildItem (Join-Path $layout 'blobs/sha256')) { Get-Sha256OfFile $f.FullName | Should -Be $f.Name }
        $m = Get-Content (Join-Path $layout "blobs/sha256/$($img.ManifestDigest.Substring(7))") -Raw | ConvertFrom-Json
        $m.mediaType | Should -Be 'application/vnd.oci.image.manifest.v1+json'
        $m.config.mediaType | Should -Be 'application/vnd.oci.image.config.v1+json'
        $m.config.size | Should -Be (Get-Item (Join-Path $layout "blobs/sha256/$($img.ConfigDigest.Substring(7))")).Length
        foreach ($ld in $m.layers) {
            $ld.mediaType | Should -Be 'application/vnd.oci.image.layer.v1.tar+gzip'
            $ld.size | Should -Be (Get-Item (Join-Path $layout "blobs/sha256/$($ld.digest.Substring(7))")).Length
        }
        (Get-Content (Join-Path $layout 'oci-layout') -Raw | ConvertFrom-Json).imageLayoutVersion | Should -Be '1.0.0'
        $idx = Get-Content (Join-Path $layout 'index.json') -Raw | ConvertFrom-Json
        $e = @($idx.manifests | Where-Object { $_.annotations.'org.opencontainers.image.ref.name' -eq 'test' })
        $e.Count | Should -Be 1
        $e[0].digest | Should -Be $img.ManifestDigest
        $e[0].size | Should -Be $img.ManifestSize
    }

    It 'gzip layers decompress to the tars whose sha256 are the diff_ids' {
        $blob = Join-Path $layout "blobs/sha256/$($img.LayerDigests[0].Substring(7))"
        $out = Join-Path $TestDrive 'l1.tar'
        Invoke-Sh "gzip -dc '$blob' > '$out'"
        Get-Sha256OfFile $out | Should -Be (Get-Sha256OfBytes $l1)
    }

    It 'unpacks with umoci (as root) to the exact tree' -Skip:(-not $IsRoot) {
        $bundle = Join-Path $TestDrive 'bundle'
        Invoke-Sh "umoci unpack --image '${layout}:test' '$bundle'"
        $t = Get-TreeListing (Join-Path $bundle 'rootfs')
        $tool = $t | Where-Object Name -EQ 'bin/tool'
        $tool.Perm | Should -Be ([Convert]::ToInt32('4755', 8)); $tool.Uid | Should -Be 1000
        $null = $t | Where-Object Name -EQ 'dev/null' | Should -Not -BeNullOrEmpty
        ($t | Where-Object Name -EQ 'dev/null').RDevMajor | Should -Be 1
        ($t | Where-Object Name -EQ 'bin/link').LinkTarget | Should -Be 'tool'
        $h = $t | Where-Object Name -EQ 'etc/hostname'
        $h.Perm | Should -Be 384; $h.Uid | Should -Be 33; $h.Gid | Should -Be 44
    }

    It 'replaces an existing tag and keeps other tags' {
        $dir = Join-Path $TestDrive 'retag'
        $a = New-TestOciLayout -Path $dir -Layer $l1 -Tag one
        $b = New-TestOciLayout -Path $dir -Layer $l2 -Tag two
        $c = New-TestOciLayout -Path $dir -Layer $l2 -Tag one -Config @{ Cmd = 'x' }
        $idx = Get-Content (Join-Path $dir 'index.json') -Raw | ConvertFrom-Json
        $idx.manifests.Count | Should -Be 2
        ($idx.manifests | Where-Object { $_.annotations.'org.opencontainers.image.ref.name' -eq 'one' }).digest | Should -Be $c.ManifestDigest
        (& skopeo inspect "oci:${dir}:two" | ConvertFrom-Json).Digest | Should -Be $b.ManifestDigest
        $a.ManifestDigest | Should -Not -Be $c.ManifestDigest
    }

    It 'treats a single byte[] as one layer' {
        $r = New-TestOciLayout -Path (Join-Path $TestDrive 'single') -Layer $l1
        $r.LayerDigests.Count | Should -Be 1
        $r.DiffIds[0] | Should -Be "sha256:$(Get-Sha256OfBytes $l1)"
    }

    It 'writes zstd layers that skopeo accepts and zstd decompresses to the diff_id' {
        $dir = Join-Path $TestDrive 'zstd'
        $r = New-TestOciLayout -Path $dir -Layer @($l1, $l2) -Compression zstd
        $r.LayerMediaTypes | Should -Be @('application/vnd.oci.image.layer.v1.tar+zstd', 'application/vnd.oci.image.layer.v1.tar+zstd')
        (& skopeo inspect $r.Reference | ConvertFrom-Json).Layers | Should -Be $r.LayerDigests
        $blob = Join-Path $dir "blobs/sha256/$($r.LayerDigests[1].Substring(7))"
        $b = [IO.File]::ReadAllBytes($blob)
        $b[0..3] | Should -Be @(0x28, 0xB5, 0x2F, 0xFD)
        $out = Join-Path $TestDrive 'z.tar'
        Invoke-Sh "zstd -q -dc '$blob' > '$out'"
        "sha256:$(Get-Sha256OfFile $out)" | Should -Be $r.DiffIds[1]
    }

    It 'mixes compressions with -PerLayerCompression (none stores the tar itself)' {
        $dir = Join-Path $TestDrive 'mixed'
        $r = New-TestOciLayout -Path $dir -Layer @($l1, $l2) -PerLayerCompression none, zstd
        $r.LayerMediaTypes | Should -Be @('application/vnd.oci.image.layer.v1.tar', 'application/vnd.oci.image.layer.v1.tar+zstd')
        $r.LayerDigests[0] | Should -Be $r.DiffIds[0]
        (& skopeo inspect $r.Reference | ConvertFrom-Json).Layers.Count | Should -Be 2
    }

    It 'writes Docker media types with -DockerMediaTypes' {
        $dir = Join-Path $TestDrive 'docker'
        $r = New-TestOciLayout -Path $dir -Layer $l1 -DockerMediaTypes
        $m = Get-Content (Join-Path $dir "blobs/sha256/$($r.ManifestDigest.Substring(7))") -Raw | ConvertFrom-Json
        $m.mediaType | Should -Be 'application/vnd.docker.distribution.manifest.v2+json'
        $m.config.mediaType | Should -Be 'application/vnd.docker.container.image.v1+json'
        $m.layers[0].mediaType | Should -Be 'application/vnd.docker.image.rootfs.diff.tar.gzip'
        $r.ManifestMediaType | Should -Be 'application/vnd.docker.distribution.manifest.v2+json'
    }

    It 'records architecture, os and variant' {
        $r = New-TestOciLayout -Path (Join-Path $TestDrive 'arm') -Layer $l2 -Architecture arm64 -Variant v8
        $c = & skopeo inspect --config $r.Reference | ConvertFrom-Json
        $c.architecture | Should -Be 'arm64'; $c.variant | Should -Be 'v8'; $c.os | Should -Be 'linux'
    }
}

Describe 'New-TestOciIndex' {
    It 'builds a two-platform index that skopeo resolves per platform' {
        $dir = Join-Path $TestDrive 'multi'
        $l = New-TestTar -Entry @(@{ Name = 'a'; Data = 'amd' })
        $m = New-TestTar -Entry @(@{ Name = 'a'; Data = 'arm' })
        $amd = New-TestOciLayout -Path $dir -Layer $l -Tag amd
        $arm = New-TestOciLayout -Path $dir -Layer $m -Tag arm -Architecture arm64 -Variant v8
        $i = New-TestOciIndex -Path $dir -Tag multi -Manifest @(
            @{ Digest = $amd.ManifestDigest; Size = $amd.ManifestSize; MediaType = $amd.ManifestMediaType; Platform = @{ os = 'linux'; architecture = 'amd64' } }
            @{ Digest = $arm.ManifestDigest; Platform = @{ os = 'linux'; architecture = 'arm64'; variant = 'v8' } })
        $i.Reference | Should -Be "oci:${dir}:multi"
        $i.MediaType | Should -Be 'application/vnd.oci.image.index.v1+json'
        $i.Manifests[1].Size | Should -Be $arm.ManifestSize
        Get-Sha256OfFile (Join-Path $dir "blobs/sha256/$($i.IndexDigest.Substring(7))") | Should -Be $i.IndexDigest.Substring(7)
        $raw = & skopeo inspect --raw $i.Reference | ConvertFrom-Json
        $raw.mediaType | Should -Be 'application/vnd.oci.image.index.v1+json'
        $raw.manifests.digest | Should -Be @($amd.ManifestDigest, $arm.ManifestDigest)
        $raw.manifests[1].platform.variant | Should -Be 'v8'
        (& skopeo inspect $i.Reference | ConvertFrom-Json).Layers | Should -Be $amd.LayerDigests
        (& skopeo inspect --override-arch arm64 --override-variant v8 $i.Reference | ConvertFrom-Json).Layers | Should -Be $arm.LayerDigests
        # re-tagging replaces
        $i2 = New-TestOciIndex -Path $dir -Tag multi -Manifest @($arm)
        $idx = Get-Content (Join-Path $dir 'index.json') -Raw | ConvertFrom-Json
        @($idx.manifests | Where-Object { $_.annotations.'org.opencontainers.image.ref.name' -eq 'multi' }).digest | Should -Be $i2.IndexDigest
        $idx.manifests.Count | Should -Be 3
    }
}

Describe 'New-TestDockerArchive' {
    BeforeAll {
        $script:d1 = New-TestTar -Entry @(@{ Name = 'bin/'; Type = 'Dir' }, @{ Name = 'bin/x'; Data = 'x'; Mode = '0755' })
        $script:d2 = New-TestTar -Entry @(@{ Name = 'etc/'; Type = 'Dir' }, @{ Name = 'etc/y'; Data = 'y' })
    }
    It 'writes a docker save archive that skopeo reads' {
        $p = Join-Path $TestDrive 'save.tar'
        $r = New-TestDockerArchive -Path $p -Layer @($d1, $d2) -Config @{ Cmd = 'sh' }
        $r.LayerPaths | Should -Be @("$(Get-Sha256OfBytes $d1)/layer.tar", "$(Get-Sha256OfBytes $d2)/layer.tar")
        $names = & tar -tf $p
        $names | Should -Contain 'manifest.json'
        $names | Should -Contain $r.ConfigName
        $names | Should -Contain $r.LayerPaths[1]
        $names | Where-Object { $_ -like './*' } | Should -BeNullOrEmpty
        $man = (& tar -xOf $p manifest.json) | ConvertFrom-Json
        $man[0].RepoTags | Should -Be @('test/app:1.0')
        $man[0].Config | Should -Be $r.ConfigName
        $cfgText = (& tar -xOf $p $r.ConfigName) -join "`n"
        "sha256:$(Get-Sha256OfBytes ([Text.Encoding]::UTF8.GetBytes($cfgText)))" | Should -Be $r.ConfigDigest
        $j = & skopeo inspect "docker-archive:$p" | ConvertFrom-Json
        $LASTEXITCODE | Should -Be 0
        $j.Layers | Should -Be $r.DiffIds
        (& skopeo inspect --config "docker-archive:$p" | ConvertFrom-Json).config.Cmd | Should -Be @('sh')
    }
    It '-OmitLayer leaves the layer file out while manifest.json names it' {
        $p = Join-Path $TestDrive 'bad.tar'
        $r = New-TestDockerArchive -Path $p -Layer @($d1, $d2) -OmitLayer 1
        & tar -tf $p | Should -Not -Contain $r.LayerPaths[1]
        ((& tar -xOf $p manifest.json) | ConvertFrom-Json)[0].Layers | Should -Contain $r.LayerPaths[1]
        & skopeo inspect "docker-archive:$p" 2>&1 | Out-Null
        $LASTEXITCODE | Should -Not -Be 0
    }
}

Describe 'Get-CpioListing' {
    BeforeAll {
        $script:tree = Join-Path $TestDrive 'cpiotree'
        $script:cpio = Join-Path $TestDrive 'gnu.cpio'
        New-Item -ItemType Directory -Path "$tree/etc", "$tree/bin", "$tree/dev" | Out-Null
        Invoke-Sh @"
set -e
cd '$tree'
printf 'hello\n' > etc/a; chmod 0640 etc/a
ln etc/a etc/b
ln -s ../etc/a bin/l
printf x > bin/su
chmod 0755 etc bin dev
"@
        if ($IsRoot) {
            Invoke-Sh "cd '$tree' && chown 1000:100 bin/su && chmod 4755 bin/su && mknod dev/console c 5 1 && mknod dev/sdb3 b 8 19 && mkfifo dev/fifo && chmod 0600 dev/console"
        }
        Invoke-Sh "touch -h -d @1700000000 '$tree/bin/l'; cd '$tree' && find . -print0 | cpio -0 -o -H newc --quiet > '$cpio'"
        $script:list = Get-CpioListing $cpio
    }

    It 'reads every entry GNU cpio wrote, with names as stored' {
        $expected = @('.', 'bin', 'bin/l', 'bin/su', 'dev', 'etc', 'etc/a', 'etc/b')
        if ($IsRoot) { $expected += 'dev/console', 'dev/sdb3', 'dev/fifo' }
        ($list.Name | Sort-Object) | Should -Be ($expected | Sort-Object)
        ($list | Select-Object -ExpandProperty Part -Unique) | Should -Be 0
    }

    It 'gives a hardlink group one inode, nlink 2 and the data once' {
        $a = $list | Where-Object Name -EQ 'etc/a'; $b = $list | Where-Object Name -EQ 'etc/b'
        $a.Ino | Should -Be $b.Ino
        $a.NLink | Should -Be 2; $b.NLink | Should -Be 2
        ($a.Size + $b.Size) | Should -Be 6
        $withData = @($a, $b) | Where-Object Size -EQ 6
        $withData.DataSha256 | Should -Be (Get-Sha256OfBytes ([Text.Encoding]::UTF8.GetBytes("hello`n")))
        $a.Type | Should -Be 'File'; $a.Perm | Should -Be ([Convert]::ToInt32('640', 8))
        $a.Mode | Should -Be ([Convert]::ToInt32('100640', 8))
    }

    It 'reads symlinks, directories and their mode bits' {
        $l = $list | Where-Object Name -EQ 'bin/l'
        $l.Type | Should -Be 'Symlink'; $l.LinkTarget | Should -Be '../etc/a'; $l.Size | Should -Be 8
        $l.Mode | Should -Be ([Convert]::ToInt32('120777', 8)); $l.MTime | Should -Be 1700000000
        $l.DataSha256 | Should -BeNullOrEmpty
        $d = $list | Where-Object Name -EQ 'etc'
        $d.Type | Should -Be 'Dir'; $d.Perm | Should -Be 493; $d.Mode | Should -Be ([Convert]::ToInt32('40755', 8))
    }

    It 'reads owners, setuid bits and device numbers' -Skip:(-not $IsRoot) {
        $su = $list | Where-Object Name -EQ 'bin/su'
        $su.Uid | Should -Be 1000; $su.Gid | Should -Be 100; $su.Perm | Should -Be ([Convert]::ToInt32('4755', 8))
        $c = $list | Where-Object Name -EQ 'dev/console'
        $c.Type | Should -Be 'CharDevice'; $c.RDevMajor | Should -Be 5; $c.RDevMinor | Should -Be 1; $c.Perm | Should -Be 384
        $b = $list | Where-Object Name -EQ 'dev/sdb3'
        $b.Type | Should -Be 'BlockDevice'; $b.RDevMajor | Should -Be 8; $b.RDevMinor | Should -Be 19
        ($list | Where-Object Name -EQ 'dev/fifo').Type | Should -Be 'Fifo'
    }

    It 'reads gzip and zstd compressed archives' {
        Invoke-Sh "gzip -c '$cpio' > '$cpio.gz'; zstd -q -c '$cpio' > '$cpio.zst'"
        $g = Get-CpioListing "$cpio.gz"
        $g.Name | Should -Be $list.Name
        $g.DataSha256 | Should -Be $list.DataSha256
        ($g.Compression | Select-Object -Unique) | Should -Be 'gzip'
        $z = Get-CpioListing "$cpio.zst"
        $z.Name | Should -Be $list.Name
        ($z.Compression | Select-Object -Unique) | Should -Be 'zstd'
    }

    It 'reads the kernel''s concatenations: gzip members, NUL padding, zstd, plain' {
        # gzip + gzip (one gzip stream of two members) + 3 NULs + zstd + NUL pad to 4 + plain
        $body = Join-Path $TestDrive 'concat.body'
        Invoke-Sh "gzip -c '$cpio' > '$body'; gzip -c '$cpio' >> '$body'; head -c 3 /dev/zero >> '$body'; zstd -q -c '$cpio' >> '$body'"
        $len = (Get-Item $body).Length
        Invoke-Sh "cp '$body' '$cpio.cat'; head -c $((4 - $len % 4) % 4) /dev/zero >> '$cpio.cat'; cat '$cpio' >> '$cpio.cat'"
        $all = Get-CpioListing "$cpio.cat"
        $all.Count | Should -Be (4 * $list.Count)
        ($all.Part | Select-Object -Unique) | Should -Be @(0, 1, 2, 3)
        ($all | Where-Object Part -EQ 2).Compression | Select-Object -Unique | Should -Be 'zstd'
        ($all | Where-Object Part -EQ 3).Compression | Select-Object -Unique | Should -Be 'none'
        ($all | Where-Object Part -EQ 3).Name | Should -Be $list.Name
        (Get-CpioListing "$cpio.cat" -FirstArchiveOnly).Count | Should -Be $list.Count
        # plain first, then gzip
        Invoke-Sh "cat '$cpio' '$cpio.gz' > '$cpio.pg'"
        (Get-CpioListing "$cpio.pg" | Where-Object Part -EQ 1).Count | Should -Be $list.Count
    }

    It 'throws on bad magic, truncated data, truncated compression, junk and a missing trailer' {
        $bytes = [IO.File]::ReadAllBytes($cpio)
        $bad = [byte[]]$bytes.Clone(); $bad[5] = [byte][char]'7'
        { Get-CpioListing (Save-Bytes $bad 'badmagic.cpio') } | Should -Throw '*magic*'
        $cut = [byte[]]$bytes[0..199]
        { Get-CpioListing (Save-Bytes $cut 'cut.cpio') } | Should -Throw '*Truncated*'
        $junk = [byte[]]($bytes + [Text.Encoding]::ASCII.GetBytes('JUNKJUNK'))
        { Get-CpioListing (Save-Bytes $junk 'junk.cpio') } | Should -Throw '*magic*'
        Invoke-Sh "gzip -c '$cpio' | head -c 150 > '$cpio.tgz'; zstd -q -c '$cpio' | head -c 150 > '$cpio.tzst'"
        { Get-CpioListing "$cpio.tgz" } | Should -Throw '*truncated*'
        { Get-CpioListing "$cpio.tzst" } | Should -Throw '*Truncated*'
        $t = [Text.Encoding]::ASCII.GetString($bytes).LastIndexOf('TRAILER!!!') - 110
        $noTrailer = [byte[]]$bytes[0..($t - 1)]
        $p = Save-Bytes $noTrailer 'notrailer.cpio'
        { Get-CpioListing $p } | Should -Throw '*TRAILER*'
        (Get-CpioListing $p -AllowMissingTrailer).Count | Should -Be $list.Count
    }
}

Describe 'Get-ZstdFrame' {
    It 'finds each frame of a concatenation, with the content size zstd wrote from a file and none from a pipe' {
        $a = [byte[]]::new(300000); [Random]::new(1).NextBytes($a)
        $b = [Text.Encoding]::ASCII.GetBytes('zstd frame walker ' * 5000)
        $pa = Save-Bytes $a 'a.bin'; $pb = Save-Bytes $b 'b.bin'
        $out = Join-Path $TestDrive 'frames.zst'
        # From a file zstd records the size; from a pipe it cannot, so the second frame has none.
        Invoke-Sh "zstd -q -c '$pa' > '$out' && cat '$pb' | zstd -q -c >> '$out' && printf 'tail' >> '$out'"
        $bytes = [IO.File]::ReadAllBytes($out)
        $frames = @(Get-ZstdFrame $bytes)
        $frames.Count | Should -Be 2
        $frames[0].Offset | Should -Be 0
        $frames[0].ContentSize | Should -Be $a.Length
        $frames[1].Offset | Should -Be ($frames[0].Length)
        $frames[1].ContentSize | Should -BeNullOrEmpty
        # The walk ends exactly where the plain tail begins, and each frame decodes alone.
        $frames[1].Offset + $frames[1].Length | Should -Be ($bytes.Length - 4)
        $first = Save-Bytes ([byte[]]$bytes[0..($frames[0].Length - 1)]) 'first.zst'
        (Invoke-Sh "zstd -dcq '$first' | sha256sum | cut -c1-64").Trim() | Should -Be (Get-Sha256OfBytes $a)
    }
}

Describe 'Get-TreeListing' {
    It 'lists a known tree without following symlinks' {
        $root = Join-Path $TestDrive 'tree'
        New-Item -ItemType Directory -Path "$root/d/sub" | Out-Null
        Invoke-Sh @"
set -e
cd '$root'
printf 'abc' > d/f; chmod 0604 d/f
ln d/f d/hard
ln -s /nonexistent/target d/dangling
ln -s sub d/dirlink
printf 'nl' > 'd/new
line'
chmod 0750 d/sub
"@
        if ($IsRoot) { Invoke-Sh "cd '$root' && mknod d/tty c 4 64 && mknod d/loop b 7 1 && mkfifo d/p && chown 12:34 d/f && chmod 2755 d/sub" }
        $t = Get-TreeListing $root
        $names = @('d', 'd/dangling', 'd/dirlink', 'd/f', 'd/hard', "d/new`nline", 'd/sub')
        if ($IsRoot) { $names += 'd/loop', 'd/p', 'd/tty' }
        $sorted = [string[]]$names; [Array]::Sort($sorted, [StringComparer]::Ordinal)
        $t.Name | Should -Be $sorted
        $f = $t | Where-Object Name -EQ 'd/f'
        $f.Type | Should -Be 'File'; $f.Size | Should -Be 3; $f.Perm | Should -Be ([Convert]::ToInt32('604', 8)); $f.NLink | Should -Be 2
        $f.DataSha256 | Should -Be (Get-Sha256OfBytes ([Text.Encoding]::ASCII.GetBytes('abc')))
        ($t | Where-Object Name -EQ 'd/hard').Ino | Should -Be $f.Ino
        $dl = $t | Where-Object Name -EQ 'd/dangling'
        $dl.Type | Should -Be 'Symlink'; $dl.LinkTarget | Should -Be '/nonexistent/target'; $dl.Size | Should -Be 0; $dl.DataSha256 | Should -BeNullOrEmpty
        ($t | Where-Object Name -EQ 'd/dirlink').Type | Should -Be 'Symlink'
        $t.Name | Should -Not -Contain 'd/dirlink/'
        ($t | Where-Object Name -EQ "d/new`nline").Size | Should -Be 2
        ($t | Where-Object Name -EQ 'd').Type | Should -Be 'Dir'
        if ($IsRoot) {
            $f.Uid | Should -Be 12; $f.Gid | Should -Be 34
            ($t | Where-Object Name -EQ 'd/sub').Perm | Should -Be ([Convert]::ToInt32('2755', 8))
            $tty = $t | Where-Object Name -EQ 'd/tty'
            $tty.Type | Should -Be 'CharDevice'; $tty.RDevMajor | Should -Be 4; $tty.RDevMinor | Should -Be 64
            $loop = $t | Where-Object Name -EQ 'd/loop'
            $loop.Type | Should -Be 'BlockDevice'; $loop.RDevMajor | Should -Be 7; $loop.RDevMinor | Should -Be 1
            ($t | Where-Object Name -EQ 'd/p').Type | Should -Be 'Fifo'
        }
        else { ($t | Where-Object Name -EQ 'd/sub').Perm | Should -Be ([Convert]::ToInt32('750', 8)) }
    }

    It 'agrees with Get-CpioListing on a tree extracted from a cpio archive' -Skip:(-not $IsRoot) {
        $src = Join-Path $TestDrive 'src'
        New-Item -ItemType Directory -Path "$src/x" | Out-Null
        Invoke-Sh "cd '$src' && printf data > x/f && chmod 0755 x && chmod 4711 x/f && chown 5:6 x/f && ln -s f x/s && mknod x/c c 10 200 && find . -print0 | cpio -0 -o -H newc --quiet | gzip > ../rt.cpio.gz"
        $dest = Join-Path $TestDrive 'dest'
        Expand-TestCpioArchive -Path (Join-Path $TestDrive 'rt.cpio.gz') -Destination $dest
        $tree = Get-TreeListing $dest
        $cpio = Get-CpioListing (Join-Path $TestDrive 'rt.cpio.gz') | Where-Object Name -NE '.'
        foreach ($c in $cpio) {
            $t = $tree | Where-Object Name -EQ ($c.Name -replace '^\./', '')
            $t | Should -Not -BeNullOrEmpty
            $t.Type | Should -Be $c.Type
            $t.Perm | Should -Be $c.Perm
            $t.Uid | Should -Be $c.Uid
            $t.LinkTarget | Should -Be $c.LinkTarget
            $t.RDevMajor | Should -Be $c.RDevMajor
            $t.RDevMinor | Should -Be $c.RDevMinor
            $t.DataSha256 | Should -Be $c.DataSha256
        }
    }
}

Describe 'New-BusyboxLayer' {
    It 'holds busybox, its applet links and the init script' {
        $t = New-BusyboxLayer -Init "#!/bin/sh`r`necho hi`r`n"
        , $t | Should -BeOfType [byte[]]
        $p = Save-Bytes $t 'bb.tar'
        $l = @(Get-GnuTarListing $p)
        ($l | Where-Object Rest -EQ 'bin/busybox').Mode | Should -BeExactly '-rwxr-xr-x'
        foreach ($a in 'sh', 'poweroff', 'mount', 'echo', 'cat', 'ls') { $l.Rest | Should -Contain "bin/$a -> busybox" }
        foreach ($d in 'bin/', 'sbin/', 'etc/') { ($l | Where-Object Rest -EQ $d).Mode | Should -BeExactly 'drwxr-xr-x' }
        ($l | Where-Object Rest -EQ 'init').Mode | Should -BeExactly '-rwxr-xr-x'
        $out = Join-Path $TestDrive 'bb'
        New-Item -ItemType Directory $out | Out-Null
        Invoke-Sh "tar -C '$out' -xf '$p'"
        Get-Sha256OfFile "$out/bin/busybox" | Should -Be (Get-Sha256OfFile /bin/busybox)
        [IO.File]::ReadAllText("$out/init") | Should -BeExactly "#!/bin/sh`necho hi`n"
    }
    It 'has no init without -Init' {
        & tar -tf (Save-Bytes (New-BusyboxLayer) 'bb2.tar') | Should -Not -Contain 'init'
    }
}

Describe 'Invoke-QemuBoot' -Tag 'Qemu' {
    It 'boots a hand-made busybox initramfs to its marker within 30 s' -Skip:(-not ($IsRoot -and $HasQemu)) {
        $root = Join-Path $TestDrive 'initramfs'
        New-Item -ItemType Directory -Path "$root/bin", "$root/dev", "$root/proc" | Out-Null
        Copy-Item /bin/busybox "$root/bin/busybox"
        [IO.File]::WriteAllText("$root/init", "#!/bin/busybox sh`n/bin/busybox echo HELPER-MARKER-`$((6*7))`n/bin/busybox poweroff -f`n")
        Invoke-Sh "cd '$root' && chmod 0755 init bin/busybox && mknod dev/console c 5 1 && find . | cpio -o -H newc --quiet | gzip > ../boot.cpio.gz"
        $r = Invoke-QemuBoot -Initrd (Join-Path $TestDrive 'boot.cpio.gz') -TimeoutSeconds 60
        $r.Output | Should -Match 'HELPER-MARKER-42'
        $r.TimedOut | Should -BeFalse
        $r.ExitCode | Should -Be 0
        $r.Seconds | Should -BeLessThan 30
    }

    It 'boots New-BusyboxLayer -Init turned into newc by bsdtar' -Skip:(-not $HasQemu) {
        $tar = Save-Bytes (New-BusyboxLayer -Init "#!/bin/sh`necho LAYER-MARKER-`$((6*7))`n/bin/poweroff -f`n") 'bbinit.tar'
        $cpio = Join-Path $TestDrive 'bbinit.cpio'
        Invoke-Sh "bsdtar --format newc -cf '$cpio' '@$tar'"
        (Get-CpioListing $cpio | Where-Object Name -EQ 'init').Perm | Should -Be 493
        $r = Invoke-QemuBoot -Initrd $cpio -TimeoutSeconds 60
        $r.Output | Should -Match 'LAYER-MARKER-42'
        $r.ExitCode | Should -Be 0
    }
}

Describe 'Get-FreeTcpPort and New-TestDirectory' {
    It 'returns a port that can be bound on 127.0.0.1' {
        $port = Get-FreeTcpPort
        $port | Should -BeOfType [int]
        $port | Should -BeGreaterThan 0
        $l = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Loopback, $port)
        { $l.Start() } | Should -Not -Throw
        $l.Stop()
    }
    It 'creates distinct new directories' {
        $a = New-TestDirectory -Parent $TestDrive
        $b = New-TestDirectory -Parent $TestDrive
        $a | Should -Not -Be $b
        Test-Path -LiteralPath $a -PathType Container | Should -BeTrue
        (Split-Path $a -Parent) | Should -Be ((Resolve-Path $TestDrive).ProviderPath.TrimEnd('/'))
        (Split-Path (New-TestDirectory) -Parent) | Should -Be ((Resolve-Path $TestDrive).ProviderPath.TrimEnd('/'))
        $c = New-TestDirectory -Temp
        (Split-Path $c -Parent) | Should -Be ([IO.Path]::GetTempPath().TrimEnd('/'))
        Test-Path -LiteralPath $c -PathType Container | Should -BeTrue
        Remove-Item -LiteralPath $c
    }
}
