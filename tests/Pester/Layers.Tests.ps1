# Layer semantics (OCI image-spec "Applying changesets") on layers whose tars the tests write
# byte by byte, so owners, types and entry order are exactly what each case needs.

BeforeAll {
    Import-Module ($env:INITRAMFSPS_MODULE ?? "$PSScriptRoot/../../out/InitramfsPS/InitramfsPS.psd1") -Force
    Import-Module $PSScriptRoot/TestHelpers.psm1 -Force
    $script:work = New-TestDirectory
    $env:INITRAMFSPS_CACHE = Join-Path $work cache
    $script:n = 0

    # Builds a layout from tar entry lists (one list per layer) and returns the expanded rootfs.
    function script:Expand-TestLayers {
        param([object[]] $Layers, [string] $Compression = 'gzip', [switch] $NoEndBlocks, [switch] $DockerMediaTypes)
        $script:n++
        $tars = foreach ($l in $Layers) { , (New-TestTar -Entry $l -NoEndBlocks:$NoEndBlocks) }
        $img = New-TestOciLayout -Path (Join-Path $work "img$n") -Layer $tars -Compression $Compression -Tag t -DockerMediaTypes:$DockerMediaTypes
        Get-OciImage $img.Reference | Expand-OciLayers
    }
    function script:Paths($rootfs) { @($rootfs.GetEntries() | ForEach-Object Path) }
}

AfterAll {
    Remove-Item -Recurse -Force $work -ErrorAction SilentlyContinue
}

Describe 'Whiteouts' {
    It 'a .wh. file deletes the file from the lower layer' {
        $r = Expand-TestLayers @(
            @(@{ Name = 'etc/'; Type = 'Dir' }, @{ Name = 'etc/keep'; Data = 'k' }, @{ Name = 'etc/gone'; Data = 'g' }),
            @(@{ Name = 'etc/.wh.gone' }))
        $r.GetEntry('/etc/gone') | Should -BeNullOrEmpty
        $r.GetEntry('/etc/keep').Size | Should -Be 1
        Paths $r | Should -Not -Contain '/etc/.wh.gone'
    }

    It 'a .wh. of a directory deletes its whole subtree' {
        $r = Expand-TestLayers @(
            @(@{ Name = 'opt/'; Type = 'Dir' }, @{ Name = 'opt/app/'; Type = 'Dir' }, @{ Name = 'opt/app/bin'; Data = 'x' }),
            @(@{ Name = 'opt/.wh.app' }))
        Paths $r | Should -Not -Contain '/opt/app'
        Paths $r | Should -Not -Contain '/opt/app/bin'
        $r.GetEntry('/opt').Type | Should -Be 'Directory'
    }

    It 'an opaque whiteout written <When> the directory entry hides lower content and keeps its own layer''s' -ForEach @(
        @{ When = 'before'; Order = 'before' }
        @{ When = 'after'; Order = 'after' }
    ) {
        $upper = if ($Order -eq 'before') {
            @(@{ Name = 'data/.wh..wh..opq' }, @{ Name = 'data/'; Type = 'Dir'; Mode = '0700' }, @{ Name = 'data/new'; Data = 'n' })
        }
        else {
            @(@{ Name = 'data/'; Type = 'Dir'; Mode = '0700' }, @{ Name = 'data/new'; Data = 'n' }, @{ Name = 'data/.wh..wh..opq' })
        }
        $r = Expand-TestLayers @(
            @(@{ Name = 'data/'; Type = 'Dir' }, @{ Name = 'data/old'; Data = 'o' }, @{ Name = 'data/sub/'; Type = 'Dir' }, @{ Name = 'data/sub/deep'; Data = 'd' }),
            $upper)
        $children = @($r.GetChildren('/data') | ForEach-Object Path)
        $children | Should -Be @('/data/new')
        $r.GetEntry('/data').Mode | Should -Be ([Convert]::ToInt32('700', 8))
        Paths $r | Should -Not -Contain '/data/.wh..wh..opq'
    }

    It 'a whiteout never deletes an entry of its own layer, whatever the order' {
        $r = Expand-TestLayers @(
            @(@{ Name = 'a'; Data = 'lower' }),
            @(@{ Name = 'a'; Data = 'upper!' }, @{ Name = '.wh.a' }))
        $r.GetEntry('/a').Size | Should -Be 6
    }
}

Describe 'Replacing entries across layers' {
    It 'a file replaced by a directory' {
        $r = Expand-TestLayers @(
            @(@{ Name = 'x'; Data = 'file' }),
            @(@{ Name = 'x/'; Type = 'Dir' }, @{ Name = 'x/inner'; Data = 'i' }))
        $r.GetEntry('/x').Type | Should -Be 'Directory'
        $r.GetEntry('/x/inner').Size | Should -Be 1
    }

    It 'a directory replaced by a file removes the old subtree' {
        $r = Expand-TestLayers @(
            @(@{ Name = 'y/'; Type = 'Dir' }, @{ Name = 'y/a'; Data = 'a' }, @{ Name = 'y/b/'; Type = 'Dir' }, @{ Name = 'y/b/c'; Data = 'c' }),
            @(@{ Name = 'y'; Data = 'now a file' }))
        $r.GetEntry('/y').Type | Should -Be 'File'
        Paths $r | Where-Object { $_ -like '/y/*' } | Should -BeNullOrEmpty
        $r.Count | Should -Be 2
    }
}

Describe 'Entry types and metadata' {
    BeforeAll {
        $script:r = Expand-TestLayers @(
            , @(
                @{ Name = 'bin/'; Type = 'Dir' },
                @{ Name = 'bin/su'; Data = 'suid'; Mode = '4755' },
                @{ Name = 'bin/sg'; Data = 'sgid'; Mode = '2711' },
                @{ Name = 'tmp/'; Type = 'Dir'; Mode = '1777' },
                @{ Name = 'home/'; Type = 'Dir' },
                @{ Name = 'home/user/'; Type = 'Dir'; Uid = 1000; Gid = 1000; Mode = '0750' },
                @{ Name = 'home/user/notes'; Data = 'hello'; Uid = 1000; Gid = 1000; Mode = '0640'; MTime = 1234567890 },
                @{ Name = 'dev/'; Type = 'Dir' },
                @{ Name = 'dev/null'; Type = 'CharDevice'; DevMajor = 1; DevMinor = 3; Mode = '0666' },
                @{ Name = 'dev/loop0'; Type = 'BlockDevice'; DevMajor = 7; DevMinor = 0; Mode = '0660'; Gid = 6 },
                @{ Name = 'run/'; Type = 'Dir' },
                @{ Name = 'run/pipe'; Type = 'Fifo'; Mode = '0600' },
                @{ Name = 'lib/'; Type = 'Dir' },
                @{ Name = 'lib/libc.so.6'; Data = 'libc' },
                @{ Name = 'lib/link1'; Type = 'Symlink'; LinkName = 'link2' },
                @{ Name = 'lib/link2'; Type = 'Symlink'; LinkName = '/lib/link3' },
                @{ Name = 'lib/link3'; Type = 'Symlink'; LinkName = 'libc.so.6' }
            ))
    }

    It 'keeps setuid and setgid bits' {
        $r.GetEntry('/bin/su').Mode | Should -Be ([Convert]::ToInt32('4755', 8))
        $r.GetEntry('/bin/su').ModeString | Should -Be '-rwsr-xr-x'
        $r.GetEntry('/bin/sg').ModeString | Should -Be '-rwx--s--x'
    }

    It 'keeps the sticky bit' {
        $r.GetEntry('/tmp').ModeString | Should -Be 'drwxrwxrwt'
    }

    It 'keeps files owned by uid 1000 and their mtime' {
        $e = $r.GetEntry('/home/user/notes')
        $e.Uid | Should -Be 1000
        $e.Gid | Should -Be 1000
        $e.MTime | Should -Be 1234567890
        $e.ModeString | Should -Be '-rw-r-----'
        $r.GetEntry('/home/user').Owner | Should -Be '1000:1000'
    }

    It 'keeps character and block devices with their numbers' {
        $null_ = $r.GetEntry('/dev/null')
        $null_.Type | Should -Be 'CharDevice'
        "$($null_.DevMajor):$($null_.DevMinor)" | Should -Be '1:3'
        $loop = $r.GetEntry('/dev/loop0')
        $loop.Type | Should -Be 'BlockDevice'
        "$($loop.DevMajor):$($loop.DevMinor):$($loop.Gid)" | Should -Be '7:0:6'
    }

    It 'keeps fifos' {
        $r.GetEntry('/run/pipe').Type | Should -Be 'Fifo'
        $r.GetEntry('/run/pipe').ModeString | Should -Be 'prw-------'
    }

    It 'keeps symlink chains as data and resolves them only inside the rootfs' {
        $r.GetEntry('/lib/link1').LinkTarget | Should -Be 'link2'
        $r.GetEntry('/lib/link2').LinkTarget | Should -Be '/lib/link3'
        $r.GetEntry('/lib/link1').Type | Should -Be 'Symlink'
        $r.Resolve('/lib/link1').Path | Should -Be '/lib/libc.so.6'
    }

    It 'exports every type with the same metadata (read back by the tests'' own cpio reader)' {
        $out = Join-Path $work 'types.cpio'
        $r | Set-InitramfsInit -Content "#!/bin/sh`n" -ErrorAction Stop | Export-Initramfs $out -Force -WarningAction SilentlyContinue | Out-Null
        $listing = Get-CpioListing $out | Group-Object Name -AsHashTable
        $listing['bin/su'][0].Perm | Should -Be ([Convert]::ToInt32('4755', 8))
        $listing['dev/null'][0].Type | Should -Be 'CharDevice'
        "$($listing['dev/loop0'][0].RDevMajor):$($listing['dev/loop0'][0].RDevMinor)" | Should -Be '7:0'
        $listing['run/pipe'][0].Type | Should -Be 'Fifo'
        $listing['home/user/notes'][0].Uid | Should -Be 1000
        $listing['lib/link2'][0].LinkTarget | Should -Be '/lib/link3'
    }
}

Describe 'Hardlinks' {
    It 'a hardlink to a file from a lower layer shares its inode and content' {
        $r = Expand-TestLayers @(
            @(@{ Name = 'usr/'; Type = 'Dir' }, @{ Name = 'usr/bin/'; Type = 'Dir' }, @{ Name = 'usr/bin/perl'; Data = 'perl-binary'; Mode = '0755' }),
            @(@{ Name = 'usr/bin/perl5.36'; Type = 'Hardlink'; LinkName = 'usr/bin/perl' }))
        $a = $r.GetEntry('/usr/bin/perl')
        $b = $r.GetEntry('/usr/bin/perl5.36')
        $b.Type | Should -Be 'File'
        $b.Size | Should -Be 11
        $b.Mode | Should -Be ([Convert]::ToInt32('755', 8))
        $a.Hardlink | Should -Not -BeNullOrEmpty
        [object]::ReferenceEquals($a.Hardlink, $b.Hardlink) | Should -BeTrue

        $out = Join-Path $work 'hardlink.cpio'
        $r | Set-InitramfsInit -Content "#!/usr/bin/perl`n" | Export-Initramfs $out -NoDefaultEntries | Out-Null
        $l = Get-CpioListing $out | Where-Object Name -in 'usr/bin/perl', 'usr/bin/perl5.36'
        $l.Count | Should -Be 2
        $l[0].Ino | Should -Be $l[1].Ino
        $l | ForEach-Object { $_.NLink | Should -Be 2 }
        ($l | Measure-Object Size -Sum).Sum | Should -Be 11 -Because 'the data is stored once'
    }

    It 'a hardlink to nothing is an error naming the layer and the path' {
        $err = $null
        $tar = New-TestTar -Entry @(@{ Name = 'a'; Type = 'Hardlink'; LinkName = 'missing' })
        $img = New-TestOciLayout -Path (Join-Path $work 'dangling') -Layer @(, $tar) -Tag t
        $r = Get-OciImage $img.Reference | Expand-OciLayers -ErrorVariable err -ErrorAction SilentlyContinue
        $r | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'LayerHardlinkTargetMissing,*'
        $err[0].Exception.Message | Should -Match 'layer 1 \(' 
        $err[0].Exception.Message | Should -Match "'/a'"
    }
}

Describe 'Tar dialects and layer formats' {
    It 'reads a ./-prefixed tar as the same paths' {
        $r = Expand-TestLayers @(, @(@{ Name = './'; Type = 'Dir'; Mode = '0755' }, @{ Name = './etc/'; Type = 'Dir' }, @{ Name = './etc/hostname'; Data = 'vm' }))
        Paths $r | Should -Be @('/', '/etc', '/etc/hostname')
    }

    It 'reads a tar without end-of-archive blocks' {
        $tar = New-TestTar -Entry @(@{ Name = 'a'; Data = 'x' }, @{ Name = 'b'; Data = 'yy' }) -NoEndBlocks
        ($tar.Length % 512) | Should -Be 0
        $tar[-1024..-1] | Where-Object { $_ -ne 0 } | Should -Not -BeNullOrEmpty -Because 'the tar must really lack end blocks'
        $img = New-TestOciLayout -Path (Join-Path $work 'noend') -Layer @(, $tar) -Tag t
        $r = Get-OciImage $img.Reference | Expand-OciLayers
        $r.GetEntry('/b').Size | Should -Be 2
    }

    It 'confines absolute paths to the root' {
        $r = Expand-TestLayers @(, @(@{ Name = '/etc/'; Type = 'Dir' }, @{ Name = '/etc/abs'; Data = 'a' }, @{ Name = 'a/../b'; Data = 'b' }))
        Paths $r | Should -Be @('/', '/b', '/etc', '/etc/abs')
    }

    It 'creates missing parent directories' {
        $r = Expand-TestLayers @(, @(@{ Name = 'deep/er/file'; Data = 'f' }))
        $r.GetEntry('/deep/er').Type | Should -Be 'Directory'
        $r.GetEntry('/deep/er').ModeString | Should -Be 'drwxr-xr-x'
    }

    It 'applies <Compression> layers' -ForEach @(
        @{ Compression = 'gzip'; Docker = $false }
        @{ Compression = 'zstd'; Docker = $false }
        @{ Compression = 'none'; Docker = $false }
        @{ Compression = 'gzip'; Docker = $true }
    ) {
        $r = Expand-TestLayers @(@(@{ Name = 'f'; Data = 'content' }), @(@{ Name = 'g'; Data = 'more' })) -Compression $Compression -DockerMediaTypes:$Docker
        Paths $r | Should -Be @('/', '/f', '/g')
    }

    It 'reads names longer than 100 bytes (ustar prefix and PAX)' {
        $long = ('d' * 60) + '/' + ('e' * 60) + '/' + ('f' * 90)
        $pax = 'x' * 150
        $r = Expand-TestLayers @(, @(@{ Name = $long; Data = '1' }, @{ Name = $pax; Data = '2' }))
        $r.GetEntry("/$long").Size | Should -Be 1
        $r.GetEntry("/$pax").Size | Should -Be 1
    }

    It 'refuses an entry whose parent is a symlink instead of following it' {
        $tar1 = New-TestTar -Entry @(@{ Name = 'etc'; Type = 'Symlink'; LinkName = '/' })
        $tar2 = New-TestTar -Entry @(@{ Name = 'etc/passwd'; Data = 'x' })
        $img = New-TestOciLayout -Path (Join-Path $work 'through') -Layer $tar1, $tar2 -Tag t
        $err = $null
        Get-OciImage $img.Reference | Expand-OciLayers -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'LayerEntryThroughSymlink,*'
        $err[0].Exception.Message | Should -Match 'layer 2'
    }
}

Describe 'Images from other sources' {
    It 'a docker save archive gives the same rootfs as the layout' {
        $tars = (New-TestTar -Entry @(@{ Name = 'bin/'; Type = 'Dir' }, @{ Name = 'bin/x'; Data = 'x'; Mode = '4755' })),
                (New-TestTar -Entry @(@{ Name = 'bin/.wh.x' }, @{ Name = 'bin/y'; Data = 'yy'; Uid = 1000 }))
        $archive = Join-Path $work 'saved.tar'
        New-TestDockerArchive -Path $archive -Layer $tars -RepoTag 'test/app:1.0' | Out-Null
        $layout = New-TestOciLayout -Path (Join-Path $work 'same') -Layer $tars -Tag t
        $fromArchive = Get-OciImage "docker-archive:${archive}:test/app:1.0" | Expand-OciLayers
        $fromLayout = Get-OciImage $layout.Reference | Expand-OciLayers
        ($fromArchive.GetEntries() | ForEach-Object ToString) | Should -Be ($fromLayout.GetEntries() | ForEach-Object ToString)
        $fromArchive.GetEntry('/bin/y').Uid | Should -Be 1000
    }

    It 'resolves a multi-platform index to the platform asked for' {
        $dir = Join-Path $work 'multi'
        $amd = New-TestOciLayout -Path $dir -Layer (New-TestTar -Entry @(@{ Name = 'arch'; Data = 'amd64' })) -Tag amd
        $arm = New-TestOciLayout -Path $dir -Layer (New-TestTar -Entry @(@{ Name = 'arch'; Data = 'arm64v8' })) -Tag arm -Architecture arm64 -Variant v8
        New-TestOciIndex -Path $dir -Tag multi -Manifest @(
            @{ Digest = $amd.ManifestDigest; Size = $amd.ManifestSize; MediaType = $amd.ManifestMediaType; Platform = @{ os = 'linux'; architecture = 'amd64' } }
            @{ Digest = $arm.ManifestDigest; Size = $arm.ManifestSize; MediaType = $arm.ManifestMediaType; Platform = @{ os = 'linux'; architecture = 'arm64'; variant = 'v8' } }
        ) | Out-Null
        (Get-OciImage "oci:${dir}:multi").Digest.ToString() | Should -Be $amd.ManifestDigest
        (Get-OciImage "oci:${dir}:multi" -Platform linux/arm64/v8 | Expand-OciLayers).GetEntry('/arch').Size | Should -Be 7
        (Get-OciImage "oci:${dir}:multi" -Platform linux/arm64).Digest.ToString() | Should -Be $arm.ManifestDigest
        $err = $null
        Get-OciImage "oci:${dir}:multi" -Platform linux/s390x -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'PlatformNotFound,*'
        $err[0].Exception.Message | Should -Match 'linux/amd64, linux/arm64'
    }
}

Describe 'Rootfs objects in the pipeline' {
    It 'changing cmdlets copy the rootfs, so one expanded image feeds two variants' {
        $r = Expand-TestLayers @(, @(@{ Name = 'base'; Data = 'b' }))
        $host1 = Join-Path $work 'one.txt'; Set-Content $host1 'one'
        $v1 = $r | Add-InitramfsFile $host1 /opt/one
        $v2 = $r | Set-InitramfsInit -Content "#!/bin/sh`n"
        $r.Count | Should -Be 2
        $r.GetEntry('/opt/one') | Should -BeNullOrEmpty
        $v1.GetEntry('/opt/one').Mode | Should -Be ([Convert]::ToInt32('755', 8))
        $v1.GetEntry('/init') | Should -BeNullOrEmpty
        $v2.GetEntry('/init').Size | Should -Be 10
    }

    It 'Add-InitramfsFile takes -Mode, -Owner and -Recurse and creates parents' {
        $tree = Join-Path $work 'tree'
        New-Item -ItemType Directory "$tree/sub" -Force | Out-Null
        Set-Content "$tree/a.conf" 'a'; Set-Content "$tree/sub/b.conf" 'bb'
        New-Item -ItemType SymbolicLink -Path "$tree/link" -Target 'a.conf' | Out-Null
        $r = Expand-TestLayers @(, @(@{ Name = 'etc/'; Type = 'Dir' }))
        $r2 = $r | Add-InitramfsFile $tree /etc/app -Recurse -Mode 0640 -Owner 1000:100
        $r2.GetEntry('/etc/app/sub/b.conf').ModeString | Should -Be '-rw-r-----'
        $r2.GetEntry('/etc/app/sub/b.conf').Owner | Should -Be '1000:100'
        $r2.GetEntry('/etc/app/link').LinkTarget | Should -Be 'a.conf'
        $r2.GetEntry('/etc/app').Type | Should -Be 'Directory'
        $r3 = $r | Add-InitramfsFile "$tree/a.conf" /usr/local/share/
        $r3.GetEntry('/usr/local/share/a.conf').Size | Should -Be (Get-Item "$tree/a.conf").Length
        $r3.GetEntry('/usr/local').Owner | Should -Be '0:0'
        $err = $null
        $r | Add-InitramfsFile $tree /etc/app -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'HostDirectoryNeedsRecurse,*'
    }
}
